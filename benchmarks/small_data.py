"""Where the VAE's default validation split and early stopping belong (issue 32): held-out
log-likelihood of the same VAE fitted with its defaults and without validation, on real
tables of several sizes.

The VAE is ``elbokit compare``'s (``likelihood="gaussian"``, which standardizes each
feature; one hidden layer of 256; L = min(10, d // 2)), with ``epochs="auto"`` (at least
1,000 steps, at most 100 epochs). "none": ``validation_fraction=0, patience=0``, every
training row fitted, the last epoch's weights kept. "default": ``"auto"`` for both
(:func:`elbokit.nn.config.auto_validation`): on a fit of at most SMALL_DATA_ROWS rows a
seeded 10% held out, a stop after the longer of 10 epochs and 200 steps without a better
validation ELBO, the best validation epoch's weights kept; on a larger fit the same as
none. The tables: scikit-learn's wine, diabetes, breast cancer and digits (and seeded
subsets of digits' training rows), scanpy's bundled pbmc68k_reduced (700 cells x 765
genes, its scaled ``X``; the issue's table) when scanpy is installed, and with
``--fashion N,...`` the first N Fashion-MNIST training images (the VAE's default
likelihood for images; 2,000 test images); each split 80/20 with seed 0 (the subsets
take the first n of the shuffled training rows; the test rows are the same for every
subset). Held-out log p(x): nats per sample, importance sampled (k = ``--k``), the mean
over ``--seeds`` seeds of the fit, and the median over the test rows (on digits one test
row, a pixel 90 standard deviations from the training rows' mean, moves the mean by tens
of nats from one fit to the next); PCA's (exact) and independent Gaussians' per feature
for reference.

    .venv/bin/python benchmarks/small_data.py [--k 200] [--seeds 4] [--fashion 2000,5000]
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
from elbokit.nn.config import AUTO_PATIENCE, AUTO_PATIENCE_STEPS, SMALL_DATA_ROWS


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


def held_out(train, test, *, latent, seed, k, default) -> tuple[float, float, int, int, float]:
    """(mean and median test log p(x), epochs run, patience, seconds) of one fit of
    ``compare``'s VAE: with the default validation (``default``), else none."""
    none = {} if default else dict(validation_fraction=0, patience=0)
    kind = dict(likelihood="gaussian") if train.shape[1] < 784 else {}  # images: default
    vae = VAE(latent, hidden=(256,), seed=seed, progress=False, **kind, **none)
    start = time.perf_counter()
    vae.fit(train)
    seconds = time.perf_counter() - start
    values = evaluate.log_likelihood(vae, test, n_importance=k, random_state=seed).values
    return (float(values.mean()), float(np.median(values)), vae.n_iter_,
            vae.training_.patience, seconds)


def fashion(sizes: list[int]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, first n training images, 2,000 test images) of Fashion-MNIST per size."""
    ds = load("fashion-mnist", seed=0)
    return [(f"fashion-mnist[:{n}]", ds.train[:n], ds.test[:2000]) for n in sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--fashion", default="", help="Fashion-MNIST subset sizes, e.g. 2000,5000")
    parser.add_argument("--out", default=str(RESULTS / "small_data.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # a shared 2-core machine
    columns = ["table", "train rows", "d", "L", "independent", "PCA", "VAE none",
               "VAE default", "median none", "median default", "patience", "epochs",
               "seconds none", "seconds default", "gain (mean)", "gain (median)"]
    rows = []
    sizes = [int(n) for n in args.fashion.split(",") if n]
    for name, train, test in tables() + (fashion(sizes) if sizes else []):
        latent = min(10, train.shape[1] // 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pca = PCA(latent).fit(train).score(test)
        independent = float(independent_log_likelihood(train, test).mean())
        cells = {False: [], True: []}  # the two sides alternated seed by seed
        for seed in range(args.seeds):
            for default in (False, True):
                cells[default].append(held_out(train, test, latent=latent, seed=seed,
                                               k=args.k, default=default))
        none, auto = (np.mean(cells[d], axis=0) for d in (False, True))
        row = [name, len(train), train.shape[1], latent, f"{independent:.1f}", f"{pca:.1f}",
               f"{none[0]:.1f}", f"{auto[0]:.1f}", f"{none[1]:.1f}", f"{auto[1]:.1f}",
               f"{auto[3]:.0f}", f"{auto[2]:.0f}", f"{none[4]:.1f}", f"{auto[4]:.1f}",
               f"{auto[0] - none[0]:+.1f}", f"{auto[1] - none[1]:+.1f}"]
        print(" | ".join(str(c) for c in row), flush=True)
        rows.append(row)
    write_table("small_data", "The VAE on small tables: without and with a validation split "
                "and early stopping", columns, rows, order=40,
                setup=f"compare's VAE (gaussian, hidden 256, epochs auto), IS k = {args.k}, "
                      f"mean of {args.seeds} seeds; one torch thread; nats per sample held "
                      "out",
                notes="none: every training row, the last epoch's weights; default: "
                      "validation_fraction and patience 'auto' (a fit of at most "
                      f"{SMALL_DATA_ROWS:,} rows holds 10% out, stops after the longer of "
                      f"{AUTO_PATIENCE} epochs and {AUTO_PATIENCE_STEPS} steps without a "
                      "better validation ELBO, keeps the best epoch's weights). median: over "
                      "the test rows. gain: default minus none. fashion-mnist: the VAE's "
                      "default likelihood for images (Bernoulli of the grey levels, not a "
                      "density of continuous pixels as PCA's): compare its VAE columns only.",
                out=Path(args.out))


if __name__ == "__main__":
    main()
