"""The hierarchical VAE (two stochastic layers, ``top_latent_dim``) on dynamically
binarized Fashion-MNIST, with the recipe's training and evaluation protocol
(``benchmarks/recipe.py``: gated MLPs 300-300, batch 100, L_B, warm-ups, EMA, the
Exemplar split 50,000 / 10,000, the test set binarized once, k = 5000 importance
samples): z1 and z2 of 40 dimensions each, as the VampPrior paper's HVAE.

    # a run of --minutes of training; checkpoints in benchmarks/.runs/hvae-<prior> (ignored);
    # the same command with --resume continues it (with the new --minutes as the budget)
    .venv/bin/python benchmarks/hvae.py --minutes 60 --prior vamp
    # a smoke run: 2 minutes on 5,000 images, 500 test images, k = 100
    .venv/bin/python benchmarks/hvae.py --minutes 2 --train-images 5000 --test-images 500 --k 100

Writes result.json into the run directory (the test NLL, its standard error, the epochs
and minutes trained, the settings); a run of the protocol (every training and test image,
k = 5000) also writes its row to results/hvae-<date>.json (the benchmarks page). The
importance-sampling evaluation is saved in pieces and resumes; ``--reverse`` scores the
pieces last to first, so that a second process (the same command with ``--resume``)
shares an evaluation under way.

    # the budget table: finished runs of the protocol's data (every training and test image)
    # from their result.json, at any k; writes results/hvae-budget-<date>.json
    .venv/bin/python benchmarks/hvae.py --budget-table RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from _results import write_table
from recipe import PUBLISHED, RECIPE, RUNS, load_data, prior_label, prior_options, score

LATENT, TOP = 80, 40  # z = (z1, z2): 40 + 40


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget")
    parser.add_argument("--prior", default="standard", help="p(z2): standard, mog or vamp")
    parser.add_argument("--prior-components", type=int, default=None)
    parser.add_argument("--k", type=int, default=5000, help="importance samples")
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reverse", action="store_true",
                        help="score the test pieces last to first (a second process "
                             "sharing an evaluation under way: run it with --resume)")
    parser.add_argument("--eval-threads", type=int, default=None,
                        help="torch threads for the IS evaluation (default: --threads)")
    parser.add_argument("--budget-table", nargs="+", default=None, metavar="RUN_DIR",
                        help="write the table of these finished runs instead of training")
    args = parser.parse_args(argv)
    if args.budget_table:
        return budget_table([Path(d) for d in args.budget_table])
    torch.set_num_threads(args.threads)

    import elbokit.evaluate  # noqa: F401  (imported now: the checkout may change during the run)
    from elbokit.nn import VAE

    train, validation, test = load_data(args.data_dir, args.train_images, args.test_images)
    options = prior_options(args.prior, args.prior_components)
    run_dir = Path(args.run_dir or RUNS / f"hvae-{args.prior}")
    print(f"HVAE on Fashion-MNIST: train {train.shape}, validation {validation.shape}, test "
          f"{test.shape}; z1 {LATENT - TOP} + z2 {TOP}; prior {args.prior}; "
          f"{args.minutes:g} min; k = {args.k}; run dir {run_dir}", flush=True)
    vae = VAE(LATENT, top_latent_dim=TOP, max_minutes=args.minutes, progress=False,
              **{**RECIPE, **options})
    vae.fit(train, validation=validation, checkpoint_dir=run_dir, resume=args.resume)
    history = vae.history_
    minutes = sum(h["seconds"] for h in history) / 60
    best = max(history, key=lambda h: h.get("val_elbo", -math.inf))
    print(f"trained {len(history)} epochs in {minutes:.1f} min; best validation ELBO "
          f"{best.get('val_elbo', math.nan):.2f} at epoch {best['epoch']}", flush=True)
    if args.eval_threads:
        torch.set_num_threads(args.eval_threads)
    scored = score(vae, test, args.k, cache=run_dir, reverse=args.reverse)  # resumable
    bottom = LATENT - TOP  # z = (z1, z2): z1 first
    active = dict(z1=int(np.sum(scored["activity"][:bottom] > 0.01)),
                  z2=int(np.sum(scored["activity"][bottom:] > 0.01)))
    np.save(run_dir / "test-log-likelihoods.npy", scored["values"])
    result = dict(nll=scored["nll"], stderr=scored["stderr"], active=scored["active"],
                  active_per_layer=active, epochs=len(history), best_epoch=best["epoch"],
                  train_minutes=minutes, eval_minutes=scored["eval_minutes"], k=args.k,
                  n_test=len(test), prior=args.prior,
                  prior_components=options.get("prior_components"),
                  train_images=len(train), latent=LATENT, top_latent=TOP,
                  threads=args.threads, date=time.strftime("%Y-%m-%d"))
    (run_dir / "result.json").write_text(json.dumps(result, indent=1))
    print(f"{len(history)} epochs in {minutes:.1f} min; test NLL {scored['nll']:.2f} +- "
          f"{scored['stderr']:.2f} nats (k = {args.k}); active units z1 {active['z1']}/"
          f"{bottom}, z2 {active['z2']}/{TOP}; evaluation {scored['eval_minutes']:.1f} min")
    if args.train_images is None and len(test) == 10000 and args.k == 5000:
        wall = sum(h.get("wall_seconds", h["seconds"]) for h in history) / 60
        row = [f"HVAE, z1 {bottom} + z2 {TOP}, p(z2) {prior_label(options)}", len(history),
               f"{minutes:.1f} ({wall:.1f} wall)", f"{scored['nll']:.2f} +- {scored['stderr']:.2f}",
               f"z1 {active['z1']}/{bottom}, z2 {active['z2']}/{TOP}", best["epoch"]]
        write_table("hvae", "Two stochastic layers on Fashion-MNIST (k = 5000, all 10,000 "
                    "test images)", ["model", "epochs", "train (min)", "test NLL (nats)",
                                     "active units", "best validation epoch"], [row],
                    setup=f"benchmarks/hvae.py: the recipe of benchmarks/recipe.py (gated MLPs "
                          f"300-300, batch 100, L_B, warm-ups, EMA 0.999, 50,000 / 10,000 "
                          f"split) with top_latent_dim={TOP}; {args.threads} torch thread(s) "
                          f"for training; published: one layer {PUBLISHED} (Gaussian prior), "
                          "HVAE with the VampPrior 226.53 (Exemplar VAE paper's table).",
                    order=7)


def budget_table(run_dirs: list[Path]) -> None:
    """One row per finished run (its result.json), shortest budget first, and the gain in
    nats per doubling of the training minutes between runs scored at the same k."""
    results = sorted((json.loads((d / "result.json").read_text()) | {"dir": d.name}
                      for d in run_dirs), key=lambda r: (r["k"], r["train_minutes"]))
    for r in results:
        if r["train_images"] != 50000 or r["n_test"] != 10000:
            raise SystemExit(f"{r['dir']}: not a run of the protocol's data")
    rows = [[r["dir"], f"{r['prior']} K = {r.get('prior_components')}", r["threads"],
             r["epochs"], f"{r['train_minutes']:.1f}", r["k"],
             f"{r['nll']:.2f} +- {r['stderr']:.2f}",
             f"z1 {r['active_per_layer']['z1']}/{LATENT - TOP}, "
             f"z2 {r['active_per_layer']['z2']}/{TOP}"] for r in results]
    gains = []
    for a, b in zip(results, results[1:]):
        if a["k"] == b["k"] and b["train_minutes"] > a["train_minutes"]:
            doublings = math.log2(b["train_minutes"] / a["train_minutes"])
            gains.append(f"{a['dir']} -> {b['dir']} (k = {a['k']}): "
                         f"{(a['nll'] - b['nll']) / doublings:.2f} nats per doubling of the "
                         f"training minutes")
    for row in rows:
        print(" | ".join(str(c) for c in row))
    print("\n".join(gains))
    write_table("hvae-budget", "Two stochastic layers: the test NLL against the training "
                "budget", ["run", "p(z2)", "threads", "epochs", "train (min)", "k",
                           "test NLL (nats)", "active units"], rows,
                setup="benchmarks/hvae.py runs (the recipe with top_latent_dim=40), every "
                      "training and test image; each row's own result.json.",
                notes="; ".join(gains), order=8)


if __name__ == "__main__":
    main()
