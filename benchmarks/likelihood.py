"""Test log-likelihood of VAE, IWAE and IAF models against published numbers.

Protocol of Burda et al. (2016): training images dynamically binarized (redrawn every
epoch); the test set binarized once (numpy ``default_rng(12345)``, pixel ~
Bernoulli(intensity)); test log p(x) estimated by importance sampling with k samples
(``elbokit.evaluate.log_likelihood``); active units are those with Cov_x(E[z_j|x]) >
0.01. The table gives the test NLL (nats, lower is better) +- its standard error over
the test images, and for each model its difference from the plain VAE on the same
images (paired standard error).

Architectures: Fashion-MNIST 784-300-300-40 MLP encoder and mirrored decoder, the
setting of the published 228.70 nats (VAE, as quoted by the Exemplar VAE paper,
Norouzi et al. 2020); MNIST 784-200-200-50 (Burda et al.'s one-layer VAE, 86.76 nats
with k = 1).

Every model trains for the same wall-clock budget (``--minutes``, the comparison the
targets ask for): ``max_minutes``, epoch after epoch at a constant learning rate while
the next epoch (as long as the last one) still fits in the budget.
``--epochs N`` trains a fixed number of epochs instead, with ``--schedule`` (cosine by
default). Adam, lr 1e-3 (``--lr``), batch 100. ``--jobs 2`` (the default on 2 or more
cores) trains two models at a time, a process and one torch thread each.

    .venv/bin/python benchmarks/likelihood.py                       # ~32 min on 2 cores, 4 rows
    .venv/bin/python benchmarks/likelihood.py --full                # k=5000, 3280 epochs each
    .venv/bin/python benchmarks/likelihood.py --data mnist --data-dir DIR
    .venv/bin/python benchmarks/likelihood.py --versus plain --minutes 15   # recipe vs plain

Rows: ``vae`` (L_B, one sample), ``iwae`` (IWAE bound, ``--iwae-k`` samples), ``iaf``
(L_B, a 2-step IAF posterior), ``iaf-fb`` (the IAF with free bits, 0.1 nats per
dimension, and a 2-epoch KL warm-up, as Kingma et al. 2016 train it), ``vae-fb`` (the
plain VAE with the same free bits and warm-up), ``miwae`` (MIWAE(M, K) of Rainforth et
al. 2018, M = ``--miwae-m`` bounds of K = ``--iwae-k`` samples), ``vamp`` and ``mog``
(the ``vae`` row with a VampPrior or a learned mixture-of-Gaussians prior; they need the
VAE's ``prior=`` option and are skipped, with a message, without it). The measured
table and what it says about the targets are on docs/benchmarks.md (rendered from results/).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from _results import write_markdown

SETTINGS = {
    "fashion-mnist": dict(hidden=(300, 300), latent=40, published=228.70,
                          source="VAE, Exemplar VAE paper (Norouzi et al. 2020)"),
    "mnist": dict(hidden=(200, 200), latent=50, published=86.76,
                  source="VAE k=1, Burda et al. (2016), one stochastic layer"),
}
MODELS = {
    "vae": dict(objective="b", n_samples=1),
    "iwae": dict(objective="iwae"),  # n_samples from --iwae-k
    "iaf": dict(objective="b", n_samples=1, posterior="iaf", flow_steps=2,
                flow_hidden=(320,), flow_context=64),
    "vae-fb": dict(objective="b", n_samples=1, kl_warmup=2, free_bits=0.1),
    "iaf-fb": dict(objective="b", n_samples=1, posterior="iaf", flow_steps=2,
                   flow_hidden=(320,), flow_context=64, kl_warmup=2, free_bits=0.1),
    "miwae": dict(objective="miwae"),  # miwae_m from --miwae-m, n_samples (K) from --iwae-k
    "vamp": dict(objective="b", n_samples=1, prior="vamp"),
    "mog": dict(objective="b", n_samples=1, prior="mog"),
}
TEST_SEED = 12345
FULL_EPOCHS = 3280  # Burda et al.'s schedule (sum of 3^i passes, i = 0..7)


def main() -> None:
    args = _parse()
    if args.versus and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.versus:  # the equal-time comparison of benchmarks/recipe.py
        from recipe import versus

        versus(argparse.Namespace(minutes=args.minutes, k=args.k, data_dir=args.data_dir,
                                  run_dir=None, resume=False, train_images=args.train_images,
                                  test_images=args.test_images, prior="standard",
                                  prior_components=None))
        return
    args.models = _available(args.models)
    if not args.models:
        sys.exit("error: none of the models can run with this elbokit")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from elbokit.exceptions import DataFileNotFoundError

    try:
        train, test = load_data(args)
    except DataFileNotFoundError as exc:
        sys.exit(f"error: {exc}")
    setting = SETTINGS[args.data]
    budget = "fixed epochs" if args.epochs else f"{args.minutes:g} min of training each"
    threads = 1 if args.jobs > 1 else torch_threads()
    print(f"{args.data}: train {train.shape}, test {test.shape} (binarized once, seed "
          f"{TEST_SEED}); {args.jobs} model(s) at a time, {threads} torch thread(s) each; "
          f"MLP {setting['hidden']}, latent {setting['latent']}; {budget}, Adam lr "
          f"{args.lr:g} ({args.schedule}); test NLL by importance sampling, k = {args.k}",
          flush=True)
    if args.jobs > 1:  # one process per model, one torch thread each
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [pool.submit(_run_in_worker, name, args) for name in args.models]
            for future in as_completed(futures):  # each row as soon as it is ready
                _print_row(future.result(), None)
            rows = [f.result() for f in futures]
    else:
        rows = []
        for name in args.models:
            rows.append(run_model(name, train, test, setting, args))
            _print_row(rows[-1], rows[0])
    _print_table(rows, setting, args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{k: v for k, v in r.items() if k != "values"} for r in rows], fh,
                      indent=2)


def _available(models):
    """The models whose settings this elbokit's VAE takes; a message for each other."""
    from elbokit.nn import VAE

    params = set(VAE().get_params())
    kept = []
    for name in models:
        missing = sorted(set(MODELS[name]) - params)
        if missing:
            option = ", ".join(f"{m}=" for m in missing)
            print(f"skipping {name}: it needs the {option} option, which this elbokit's VAE "
                  "lacks", flush=True)
        else:
            kept.append(name)
    return kept


def load_data(args):
    """(training intensities, test images binarized once with the fixed seed)."""
    from elbokit import data as data_module

    ds = data_module.load(args.data, data_dir=args.data_dir)
    rng = np.random.default_rng(TEST_SEED)
    test = (rng.random(ds.test.shape) < ds.test).astype(np.float32)[:args.test_images]
    return ds.train[:args.train_images], test


def _run_in_worker(name, args) -> dict:
    import torch

    torch.set_num_threads(1)
    train, test = load_data(args)
    return run_model(name, train, test, SETTINGS[args.data], args)


def run_model(name, train_X, test, setting, args) -> dict:
    from elbokit.evaluate import active_units, log_likelihood
    from elbokit.nn import VAE

    params = dict(MODELS[name])
    if name in ("iwae", "miwae"):
        params["n_samples"] = args.iwae_k
    if name == "miwae":
        params["miwae_m"] = args.miwae_m

    def vae(epochs):
        return VAE(setting["latent"], hidden=setting["hidden"], epochs=epochs, batch_size=100,
                   lr=args.lr, lr_schedule=args.schedule, binarize="dynamic", seed=args.seed,
                   progress=args.progress, **params)

    if args.epochs:
        model = vae(args.epochs).fit(train_X)
    else:  # the budget: epochs while the next one (as long as the last) still fits
        model = vae(1_000_000).set_params(max_minutes=args.minutes).fit(train_X)
    train_seconds = _seconds(model)
    start = time.perf_counter()
    ll = log_likelihood(model, test, n_importance=args.k, random_state=args.seed,
                        progress=args.progress)
    eval_seconds = time.perf_counter() - start
    count, _ = active_units(model, test)
    training = model.training_
    k = training.n_samples if training.objective != "miwae" else \
        f"{training.miwae_m}x{training.n_samples}"
    return dict(model=name, objective=training.objective, k=k, epochs=len(model.history_),
                train_minutes=train_seconds / 60, eval_minutes=eval_seconds / 60,
                nll=-ll.mean, stderr=ll.stderr, active=count,
                latent=setting["latent"], k_eval=args.k, n_test=len(test),
                final_train_elbo=model.history_[-1]["train_elbo"], values=ll.values)


def _seconds(model) -> float:
    return sum(h["seconds"] for h in model.history_)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _print_row(row, base) -> None:
    """One line per model; with ``base`` (the first model's row), its paired difference."""
    diff = ""
    if base is not None and row is not base:
        d = row["nll"] - base["nll"]
        se = np.std(base["values"] - row["values"], ddof=1) / math.sqrt(row["n_test"])
        diff = f", {d:+.2f} +- {se:.2f} vs {base['model']}"
    print(f"  {row['model']}: {row['epochs']} epochs in {row['train_minutes']:.1f} min, "
          f"test NLL {row['nll']:.2f} +- {row['stderr']:.2f}{diff} (IS {row['eval_minutes']:.1f}"
          f" min), active units {row['active']}/{row['latent']}", flush=True)


def _print_table(rows, setting, args) -> None:
    table = [f"| model | objective | k | epochs | train (min) | test NLL (nats) | "
             f"vs {rows[0]['model']} (paired) | active units | IS eval (min) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        d = row["nll"] - rows[0]["nll"]
        se = np.std(rows[0]["values"] - row["values"], ddof=1) / math.sqrt(row["n_test"])
        vs = "" if row is rows[0] else f"{d:+.2f} +- {se:.2f}"
        table.append(f"| {row['model']} | {row['objective']} | {row['k']} | {row['epochs']} | "
                     f"{row['train_minutes']:.1f} | {row['nll']:.2f} +- {row['stderr']:.2f} | "
                     f"{vs} | {row['active']}/{row['latent']} | {row['eval_minutes']:.1f} |")
    print("\n" + "\n".join(table))
    protocol = (f"protocol: {rows[0]['n_test']} test images, k = {args.k} importance samples; "
                f"published: {setting['published']} nats ({setting['source']}, k = 5000, all "
                f"10000 test images)")
    print("\n" + protocol)
    priors = any(row["model"] in ("vamp", "mog") for row in rows)
    write_markdown("likelihood-priors" if priors else "likelihood",
                   "Test log-likelihood: the priors and MIWAE, same budget" if priors else
                   "Test log-likelihood: VAE, IWAE and IAF", table,
                   setup=f"{args.data}, {protocol}.", order=4 if priors else 3)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist", choices=sorted(SETTINGS))
    parser.add_argument("--data-dir", default=None,
                        help="folder with the IDX files (else $ELBOKIT_DATA)")
    parser.add_argument("--models", default="vae,iwae,iaf-fb,vae-fb",
                        help=f"comma-separated, from {sorted(MODELS)}; the first is the "
                             "baseline of the differences")
    parser.add_argument("--minutes", type=float, default=12.0,
                        help="training wall-clock budget per model (default 12)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="train a fixed number of epochs instead of a time budget")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's (peak) learning rate")
    parser.add_argument("--schedule", default="cosine", choices=["cosine", "constant"],
                        help="learning-rate schedule of a fixed --epochs run (default cosine, "
                             "to 0); a --minutes budget trains at a constant rate")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="models trained at once, one process and one torch thread "
                             "each (default 2, or 1 on a 1-core machine)")
    parser.add_argument("--iwae-k", type=int, default=5,
                        help="K, the samples of the iwae row and of each of miwae's bounds")
    parser.add_argument("--miwae-m", type=int, default=2,
                        help="M, the K-sample bounds of the miwae row (default 2)")
    parser.add_argument("--k", type=int, default=1000,
                        help="importance samples at test (default 1000; Burda et al. and "
                             "--full: 5000, about 5x the evaluation time)")
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--train-images", type=int, default=None,
                        help="train on the first N images only (smoke runs)")
    parser.add_argument("--full", action="store_true",
                        help=f"the published protocol: k = 5000, {FULL_EPOCHS} epochs each "
                             "(hours: about 6 h a model on one CPU thread, at the 6.8 s an "
                             "epoch of the 784-300-300-40 VAE's 235 epochs in 26.7 min)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, one per core); 1 "
                             "avoids oversubscription when other jobs share the cores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--versus", choices=["plain"], default=None,
                        help="train elbokit's recommended recipe and a plain hand-written "
                             "PyTorch loop for --minutes each and score both (see "
                             "benchmarks/recipe.py)")
    args = parser.parse_args()
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    if args.full:
        args.k, args.epochs, args.test_images = 5000, args.epochs or FULL_EPOCHS, 10000
    if not args.epochs:  # a time budget: the number of epochs is not known in advance
        args.schedule = "constant"
    return args


if __name__ == "__main__":
    main()
