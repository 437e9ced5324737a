"""Where the VAE's default validation split and early stopping belong (issue 32): held-out
log-likelihood of the same VAE fitted without and with them, on real tables of several
sizes.

The VAE is ``elbokit compare``'s (``likelihood="gaussian"``, which standardizes each
feature; one hidden layer of 256; L = min(10, d // 2)), with ``epochs="auto"`` (at least
1,000 steps: 100 epochs on every table here). "none": every training row fitted, the
last epoch's weights kept. "stop f": a seeded share f of the training rows held out,
early stopping after ``--patience`` epochs without a better validation ELBO, the best
validation epoch's weights kept. The tables: scikit-learn's wine, diabetes, breast
cancer and digits (and seeded subsets of digits' training rows), scanpy's bundled
pbmc68k_reduced (700 cells x 765 genes, its scaled ``X``; the issue's table) when scanpy
is installed; each split 80/20 with seed 0 (the subsets take the first n of the shuffled
training rows; the test rows are the same for every subset). Held-out log p(x): nats per
sample, importance sampled (k = ``--k``), the mean over ``--seeds`` seeds of the fit;
PCA's (exact) and independent Gaussians' per feature for reference.

    .venv/bin/python benchmarks/small_data.py [--k 200] [--seeds 2] [--patience 10]
    .venv/bin/python benchmarks/render_docs.py      # docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _results import RESULTS, write_table

from elbokit import evaluate
from elbokit.data import load
from elbokit.linear import PCA
from elbokit.linear._gaussian import independent_log_likelihood
from elbokit.nn import VAE


def tables() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, training rows, test rows) of each table, smallest first."""
    out = []
    for name in ("wine", "diabetes", "breast-cancer"):
        ds = load(name, seed=0)
        out.append((name, ds.train, ds.test))
    try:
        import scanpy as sc

        X = np.asarray(sc.datasets.pbmc68k_reduced().X, dtype=np.float32)
        order = np.random.default_rng(0).permutation(len(X))
        n_test = len(X) // 5
        out.append(("pbmc68k (scaled)", X[order[n_test:]], X[order[:n_test]]))
    except ImportError:
        pass
    digits = load("digits", seed=0)
    for n in (300, 700):
        out.append((f"digits[:{n}]", digits.train[:n], digits.test))
    out.append(("digits", digits.train, digits.test))
    return sorted(out, key=lambda t: len(t[1]))


def held_out(train, test, *, latent, seed, fraction, patience, k) -> tuple[float, int, float]:
    """(test log p(x), epochs run, seconds) of one fit; ``fraction`` 0: no validation."""
    vae = VAE(latent, likelihood="gaussian", hidden=(256,), seed=seed, progress=False,
              patience=patience if fraction else 0, validation_fraction=fraction)
    start = time.perf_counter()
    vae.fit(train)
    seconds = time.perf_counter() - start
    ll = evaluate.log_likelihood(vae, test, n_importance=k, random_state=seed).mean
    return ll, vae.n_iter_, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--fractions", default="0.1,0.2")
    parser.add_argument("--out", default=str(RESULTS / "small_data.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine
    fractions = [float(f) for f in args.fractions.split(",")]
    columns = ["table", "train rows", "d", "L", "independent", "PCA", "VAE none"] + \
        [f"VAE stop {f:g}" for f in fractions] + ["epochs (stop)", "gain of stop"]
    rows = []
    for name, train, test in tables():
        latent = min(10, train.shape[1] // 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pca = PCA(latent).fit(train).score(test)
        independent = float(independent_log_likelihood(train, test).mean())
        cells = {}
        for fraction in [0.0] + fractions:
            runs = [held_out(train, test, latent=latent, seed=s, fraction=fraction,
                             patience=args.patience, k=args.k) for s in range(args.seeds)]
            cells[fraction] = (float(np.mean([r[0] for r in runs])),
                               float(np.mean([r[1] for r in runs])))
        best = max(fractions, key=lambda f: cells[f][0])
        row = [name, len(train), train.shape[1], latent, f"{independent:.1f}", f"{pca:.1f}",
               f"{cells[0.0][0]:.1f}"] + [f"{cells[f][0]:.1f}" for f in fractions] + \
            [f"{cells[fractions[0]][1]:.0f}", f"{cells[best][0] - cells[0.0][0]:+.1f}"]
        print(" | ".join(str(c) for c in row), flush=True)
        rows.append(row)
    write_table("small_data", "The VAE on small tables: without and with a validation split "
                "and early stopping", columns, rows, order=40,
                setup=f"compare's VAE (gaussian, hidden 256, epochs auto), patience "
                      f"{args.patience}, IS k = {args.k}, mean of {args.seeds} seeds; one "
                      "torch thread; nats per sample held out",
                notes="none: every training row, the last epoch's weights; stop f: a share "
                      "f of the training rows held out, the best validation epoch's weights. "
                      "gain of stop: the better stop column minus none.",
                out=Path(args.out))


if __name__ == "__main__":
    main()
