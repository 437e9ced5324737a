"""elbokit's recommended VAE recipe on Fashion-MNIST: the long run, and an equal-time
comparison against the plain hand-written PyTorch loop.

The recipe (``RECIPE``) is the published one of the VampPrior and Exemplar-VAE code,
as options of ``elbokit.VAE``: gated dense layers 784-300-300-40 (mirrored decoder),
the encoder's log-variance clamped to [-6, 2], batch 100, dynamic binarization, L_B,
Adam 1e-3 with a 2-epoch linear warm-up and a cosine decay to 0 over the wall-clock
budget (``max_minutes``), a KL warm-up, Polyak averaging of the weights (EMA 0.999),
and early stopping on a validation split held out from the training set (the Exemplar
protocol: the first 50,000 training images train, the last 10,000 validate; the test
NLL is that of the best validation epoch's averaged weights).

Evaluation (the Burda / Exemplar protocol, as ``benchmarks/likelihood.py``): all
10,000 test images binarized once (numpy ``default_rng(12345)``), log p(x) by
importance sampling with k = 5000 (``elbokit.evaluate.log_likelihood``), active units
Cov_x(E[z_j|x]) > 0.01.

    # the long run: 100 minutes of training, checkpoints in benchmarks/.runs/ (ignored);
    # rerun the same command with --resume to continue a run that was cut short
    .venv/bin/python benchmarks/recipe.py long --minutes 100
    # equal time against the plain loop (784-300-300-40 ReLU, Adam 1e-3 constant,
    # the usual hand-written VAE), one after the other, same IS evaluation
    # (--prior vamp: the recipe with the VampPrior, K = 50)
    .venv/bin/python benchmarks/recipe.py versus --minutes 15 --k 1000 [--prior vamp]
    # the VampPrior's long run, and both long runs scored on the same draws (paired on
    # their saved per-image values where both were scored at this k; else re-scored)
    # (K = 50 pseudo-inputs, the library's default; --prior-components 10 for the earlier runs)
    .venv/bin/python benchmarks/recipe.py long --minutes 90 --prior vamp
    .venv/bin/python benchmarks/recipe.py pair benchmarks/.runs/recipe-long \
        benchmarks/.runs/recipe-long-vamp50 --minutes 90 --k 1000
    # the minibatch as a measured choice (recorded in result.json, shown by pair)
    .venv/bin/python benchmarks/recipe.py long --minutes 15 --batch-size 400 --lr 2e-3 \
        --run-dir benchmarks/.runs/b400-15
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from _results import write_markdown

RUNS = Path(__file__).resolve().parent / ".runs"
TEST_SEED = 12345
N_TRAIN = 50000  # the Exemplar protocol: 50,000 train / 10,000 validation
RECIPE = dict(hidden=(300, 300), activation="gated", clamp_logvar=True, batch_size=100,
              binarize="dynamic", objective="b", lr=1e-3, lr_warmup=2, lr_schedule="cosine",
              kl_warmup=20, ema=0.999, patience=100, epochs=100000)
LATENT = 40
PUBLISHED = 228.70  # VAE, Gaussian prior, gated MLP 300-300, 40 latents (Exemplar VAE paper)


def load_data(data_dir=None, train_images=None, test_images=10000):
    """(train, validation) intensities and the test set binarized once."""
    from elbokit.data import load

    ds = load("fashion-mnist", data_dir=data_dir)
    train, validation = ds.train[:N_TRAIN], ds.train[N_TRAIN:]
    if train_images:
        train, validation = train[:train_images], validation[:max(train_images // 5, 100)]
    rng = np.random.default_rng(TEST_SEED)
    test = (rng.random(ds.test.shape) < ds.test).astype(np.float32)[:test_images]
    return train, validation, test


def prior_options(prior, components) -> dict:
    """The VAE settings of a long run's prior: none for the recipe's standard prior; K is
    the library's default for that prior (``config.PRIOR_COMPONENTS``) unless given."""
    from elbokit.nn.config import PRIOR_COMPONENTS

    if prior in (None, "standard"):
        return {}
    return dict(prior=prior, prior_components=components or PRIOR_COMPONENTS[prior])


def precision_option(precision) -> dict:
    """``precision=`` for the VAE when a run names one (None: the library's default)."""
    return {} if precision is None else {"precision": precision}


def step_options(batch_size=None, lr=None) -> dict:
    """The minibatch size and Adam's peak learning rate when a run names them (None: the
    recipe's)."""
    return {name: value for name, value in (("batch_size", batch_size), ("lr", lr))
            if value is not None}


def step_label(batch_size=None, lr=None) -> str:
    """"batch B, lr LR" of a run (None: the recipe's; runs from before the options had
    the recipe's)."""
    steps = {**RECIPE, **step_options(batch_size, lr)}
    return f"batch {steps['batch_size']}, lr {steps['lr']:g}"


def prior_label(options) -> str:
    return f"{options['prior']} K = {options['prior_components']}" if options else "standard"


def fit_recipe(train, validation, minutes, run_dir, resume, seed=0, progress=False,
               **options):
    """The recipe; ``options`` (e.g. prior="vamp") override or add to it."""
    from elbokit.nn import VAE

    vae = VAE(LATENT, max_minutes=minutes, seed=seed, progress=progress,
              **{**RECIPE, **options})
    return vae.fit(train, validation=validation, checkpoint_dir=run_dir, resume=resume)


# --------------------------------------------------------------------------- the plain loop

def plain_vae():
    """The usual hand-written VAE (ReLU MLPs 784-300-300-40, L_B, Bernoulli decoder):
    vae_speed.py's plain loop model."""
    from vae_speed import PlainVAE

    return PlainVAE(784, [300, 300], LATENT)


def fit_plain(train, minutes, seed=0):
    """Adam 1e-3 constant, batch 100, dynamic binarization, epochs while the next one
    (as long as the last) fits in the budget."""
    torch.manual_seed(seed)
    model = plain_vae()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.as_tensor(train)
    spent, epochs, last = 0.0, 0, 0.0
    while spent + last <= minutes * 60:
        start = time.perf_counter()
        order = torch.randperm(len(X))
        for i in range(0, len(X), 100):
            x = torch.bernoulli(X[order[i:i + 100]])
            loss = -model.elbo(x).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        last = time.perf_counter() - start
        spent, epochs = spent + last, epochs + 1
    return model, epochs, spent


def as_vae(plain):
    """The plain loop's weights inside an elbokit VAE of the same architecture, so both
    are scored by the same importance-sampling code."""
    from elbokit.nn import VAE

    vae = VAE(LATENT, hidden=(300, 300), epochs=1, progress=False)
    vae.fit(np.zeros((2, 784), np.float32))  # builds the network; weights replaced below
    enc, dec = vae.model_.encoder.net, vae.model_.decoder.net
    with torch.no_grad():
        for ours, theirs in ((enc, plain.enc), (dec, plain.dec)):
            for a, b in zip(ours.parameters(), theirs.parameters()):
                a.copy_(b)
    return vae


# --------------------------------------------------------------------------- scoring

SCORE_CHUNK = 1000  # test images per saved piece of a resumable evaluation


def score(vae, test, k, seed=0, cache=None, reverse=False) -> dict:
    """The IS estimate of log p(x) on ``test`` with k samples and the active units. With
    ``cache`` (a run directory) the images are scored in pieces of SCORE_CHUNK, each
    saved as it ends (``is-k<k>-<piece>.npy``, written atomically) and read back by a
    rerun, so an evaluation cut short resumes; piece i draws with seed + i. ``reverse``:
    the pieces last to first, so that a second process shares an evaluation under way
    (each skips the pieces the other has saved)."""
    from elbokit.evaluate import active_units, log_likelihood

    start = time.perf_counter()
    if cache is None:
        values = log_likelihood(vae, test, n_importance=k, random_state=seed).values
    else:
        starts = list(enumerate(range(0, len(test), SCORE_CHUNK)))
        for i, lo in reversed(starts) if reverse else starts:
            path = Path(cache) / f"is-k{k}-n{len(test)}-{i:02d}.npy"
            if not path.exists():
                part = log_likelihood(vae, test[lo:lo + SCORE_CHUNK], n_importance=k,
                                      random_state=seed + i).values
                tmp = path.with_suffix(".tmp.npy")
                np.save(tmp, part)
                tmp.replace(path)
        values = np.concatenate([np.load(Path(cache) / f"is-k{k}-n{len(test)}-{i:02d}.npy",
                                         allow_pickle=False) for i, _ in starts])
    values = np.asarray(values, dtype=np.float64)
    count, activity = active_units(vae, test)
    return dict(nll=-values.mean(), stderr=values.std(ddof=1) / math.sqrt(len(values)),
                active=int(count), activity=activity,
                eval_minutes=(time.perf_counter() - start) / 60, values=values)


def _row(name, epochs, minutes, scored, extra=""):
    return (f"| {name} | {epochs} | {minutes:.1f} | {scored['nll']:.2f} +- "
            f"{scored['stderr']:.2f} | {scored['active']}/{LATENT} | "
            f"{scored['eval_minutes']:.1f} | {extra} |")


def long_run(args):
    import elbokit.evaluate  # noqa: F401  (imported now: the checkout may change during the run)
    train, validation, test = load_data(args.data_dir, args.train_images, args.test_images)
    options = prior_options(args.prior, args.prior_components)
    run_dir = Path(args.run_dir or RUNS / ("recipe-long" if not options else
                                           f"recipe-long-{args.prior}"
                                           f"{options['prior_components']}"))
    print(f"Fashion-MNIST recipe, long run: train {train.shape}, validation "
          f"{validation.shape}, test {test.shape}; {args.minutes:g} min budget; "
          f"{torch.get_num_threads()} torch threads; run dir {run_dir}; k = {args.k}; "
          f"prior {prior_label(options)}; precision {args.precision or 'default'}; "
          f"{step_label(args.batch_size, args.lr)}",
          flush=True)
    vae = fit_recipe(train, validation, args.minutes, run_dir, args.resume, **options,
                     **precision_option(args.precision),
                     **step_options(args.batch_size, args.lr))
    history = vae.history_
    minutes = sum(h["seconds"] for h in history) / 60
    best = max(history, key=lambda h: h.get("val_elbo", -math.inf))
    print(f"trained {len(history)} epochs in {minutes:.1f} min; best validation ELBO "
          f"{best['val_elbo']:.2f} at epoch {best['epoch']}; last train ELBO "
          f"{history[-1]['train_elbo']:.2f}", flush=True)
    if args.eval_threads:
        torch.set_num_threads(args.eval_threads)
    scored = score(vae, test, args.k, cache=run_dir)
    print("\n| model | epochs | train (min) | test NLL (nats) | active units | IS eval (min) "
          "| best val epoch |")
    print("|---|---|---|---|---|---|---|")
    name = "recipe (gated, EMA, cosine, KL warm-up)"
    if options:
        name += f", {prior_label(options)} prior"
    print(_row(name, len(history), minutes, scored, best["epoch"]))
    print(f"\nk = {args.k}, {len(test)} test images; published {PUBLISHED} (k = 5000)")
    out = {k: v for k, v in scored.items() if k not in ("values", "activity")}
    np.save(run_dir / "test-log-likelihoods.npy", scored["values"])
    out.update(epochs=len(history), train_minutes=minutes, best_epoch=best["epoch"],
               prior=args.prior, prior_components=options.get("prior_components"),
               precision=vae.training_.precision, batch_size=vae.training_.batch_size,
               lr=vae.training_.lr,
               k=args.k, n_test=len(test), date=time.strftime("%Y-%m-%d"))
    (run_dir / "result.json").write_text(json.dumps(out, indent=2))


def versus(args):
    train, validation, test = load_data(args.data_dir, args.train_images, args.test_images)
    print(f"equal time, {args.minutes:g} min each, {torch.get_num_threads()} torch threads; "
          f"k = {args.k} on {len(test)} test images", flush=True)
    options = prior_options(args.prior, args.prior_components)
    run_dir = Path(args.run_dir or RUNS / ("recipe-versus" if not options else
                                           f"recipe-versus-{args.prior}"))
    ours = fit_recipe(train, validation, args.minutes, run_dir, args.resume, **options)
    ours_minutes = sum(h["seconds"] for h in ours.history_) / 60
    plain, plain_epochs, plain_seconds = fit_plain(np.concatenate([train, validation]),
                                                   args.minutes)
    a, b = score(ours, test, args.k), score(as_vae(plain), test, args.k)
    diff = b["nll"] - a["nll"]
    se = np.std(a["values"] - b["values"], ddof=1) / math.sqrt(len(test))
    table = ["| model | epochs | train (min) | test NLL (nats) | active units | IS eval (min) "
             "| vs plain (paired) |", "|---|---|---|---|---|---|---|",
             _row("elbokit recipe" + (f", {prior_label(options)} prior" if options else ""),
                  len(ours.history_), ours_minutes, a,
                  f"{-diff:+.2f} +- {se:.2f}"),
             _row("plain loop", plain_epochs, plain_seconds / 60, b, "")]
    print("\n" + "\n".join(table))
    write_markdown("recipe-versus-plain", f"The recipe against a plain PyTorch loop, "
                   f"{args.minutes:g} minutes each", table,
                   setup=f"Equal time, {args.minutes:g} min each, {torch.get_num_threads()} torch "
                         f"threads; k = {args.k} on {len(test)} test images.", order=5)


def pair(args):
    """Paired differences of finished long runs on the same test images with the same
    random draws (common random numbers: the same seed gives every model the same eps
    per image). Runs whose directories hold the per-image values of their own long run
    at this k and test set (``test-log-likelihoods.npy``, scored with that seed) are
    paired on them; any other is restored from its run directory (the best validation
    epoch's averaged weights, no training) and scored again."""
    train = validation = test = None
    rows = []
    for run_dir in map(Path, args.runs):
        result = json.loads((run_dir / "result.json").read_text())
        options = prior_options(result.get("prior"), result.get("prior_components"))
        saved = run_dir / "test-log-likelihoods.npy"
        if saved.exists() and result.get("k") == args.k \
                and result.get("n_test") == args.test_images:
            values = np.load(saved, allow_pickle=False)
            scored = dict(values=values, nll=-values.mean(),
                          stderr=values.std(ddof=1) / math.sqrt(len(values)))
        else:
            if test is None:
                train, validation, test = load_data(args.data_dir, args.train_images,
                                                    args.test_images)
            vae = fit_recipe(train, validation, args.minutes, run_dir, resume=True,
                             **options, **precision_option(result.get("precision")),
                             **step_options(result.get("batch_size"), result.get("lr")))
            scored = score(vae, test, args.k)
        rows.append((run_dir.name, result, prior_label(options), scored))
    print(f"\npaired on {args.test_images} test images, k = {args.k}, the same draws for "
          "every model\n")
    table = ["| run | prior | precision | minibatch | epochs | train (min) | test NLL (nats) | "
             "NLL minus the first's (paired) |", "|---|---|---|---|---|---|---|---|"]
    first = rows[0][3]["values"]
    for name, result, prior, scored in rows:
        diff = scored["values"] - first
        se = np.std(diff, ddof=1) / math.sqrt(len(diff))
        precision = result.get("precision", "float32")  # runs before the setting: float32
        steps = step_label(result.get("batch_size"), result.get("lr"))
        table.append(f"| {name} | {prior} | {precision} | {steps} | {result['epochs']} | "
                     f"{result['train_minutes']:.1f} | "
                     f"{scored['nll']:.2f} +- {scored['stderr']:.2f} | "
                     f"{-diff.mean():+.2f} +- {se:.2f} |")
        print(table[-1])
    write_markdown("recipe-pair", "Recipe runs paired on the same draws", table,
                   setup=f"Paired on {args.test_images} test images, k = {args.k}, the same "
                         "draws for every model.", order=7)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["long", "versus", "pair"])
    parser.add_argument("runs", nargs="*", help="pair: the run directories of finished "
                        "long runs (the first is the reference)")
    parser.add_argument("--minutes", type=float, default=100.0)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--prior", default="standard", choices=["standard", "vamp", "mog"],
                        help="the long run's prior (the recipe's is standard)")
    parser.add_argument("--prior-components", type=int, default=None,
                        help="K (default: the library's, elbokit.nn.config.PRIOR_COMPONENTS)")
    parser.add_argument("--precision", default=None, choices=["float32", "bfloat16"],
                        help="the training matmuls (default: the library's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"the long run's minibatch size (default: the recipe's, "
                             f"{RECIPE['batch_size']})")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"the long run's peak learning rate (default: the recipe's, "
                             f"{RECIPE['lr']:g})")
    parser.add_argument("--train-images", type=int, default=None, help="smoke runs")
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads while training (default: torch's, one per core)")
    parser.add_argument("--eval-threads", type=int, default=None,
                        help="torch threads for the IS evaluation (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"long": long_run, "versus": versus, "pair": pair}[args.what](args)


if __name__ == "__main__":
    main()
