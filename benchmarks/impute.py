"""Imputation of entries removed at random (issue 34): elbokit's VAE (trained on the rows
with NaN, ``VAE()`` at default settings: likelihood "auto" is the standardized Gaussian
for these tables, and rows with NaN get min_variance 0.2 and epochs up to 300 under
early stopping; ``impute``
with its default 1000 importance samples) against scikit-learn's ``IterativeImputer``
and ``KNNImputer`` (defaults), elbokit's ``FactorAnalysis`` (EM on the observed entries;
the factors of benchmarks/fa_tables.py) and the column means.

Each table (constant columns dropped: digits' all-zero pixels) loses 20% or 50% of its
entries completely at random (seeded; a row or column left empty gets one entry back).
Every method sees the same table with NaN, in its raw units, and fills it; the score is
the RMSE on the removed entries, each error divided by its column's standard deviation
(of the complete table), averaged over seeds (the spread: min-max over seeds).

"linear enough?" says where a linear model does the job: it pairs the VAE with the
better of the two linear imputers (IterativeImputer, a linear regression per column;
FA, the low-rank Gaussian) seed by seed, on the same masks. "no": the VAE is better on
every seed (the data are non-linear enough for it to matter); "yes": the linear one is
better on every seed; "tie": the seeds disagree (the difference is within the spread of
the masks).

"near-constant columns aside": the same RMSE without the columns where one value fills at
least 99% of the rows (digits' 7 border pixels, standard deviations 0.02 to 0.2, the
other 54 columns 0.3 to 6.5). There, one rare value that no method can foresee (the 1
of a column that is 0 in 1796 of its 1797 rows) is an error of 42 sd, and those columns
can carry a third of a seed's squared error; the column gives that RMSE for the VAE and for the best of the
other methods on it.

    .venv/bin/python benchmarks/impute.py [--seeds 0 1 2 3 4] [--datasets wine ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _results import write_table

LATENT = {"breast_cancer": 4, "wine": 3, "digits": 10}  # FA's factors (fa_tables.py)
RATES = (0.2, 0.5)
METHODS = ("column means", "KNNImputer", "IterativeImputer", "FA", "VAE")
LINEAR = ("IterativeImputer", "FA")


def load(name: str) -> np.ndarray:
    from sklearn import datasets

    X = getattr(datasets, f"load_{name}")().data.astype(np.float64)
    return X[:, X.var(axis=0) > 0]


def remove(X: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """X with a share ``rate`` of its entries set to NaN at random (every row and column
    keeps at least one entry)."""
    rng = np.random.default_rng(seed)
    missing = rng.random(X.shape) < rate
    for i in np.flatnonzero(missing.all(axis=1)):
        missing[i, rng.integers(X.shape[1])] = False
    for j in np.flatnonzero(missing.all(axis=0)):
        missing[rng.integers(X.shape[0]), j] = False
    return np.where(missing, np.nan, X)


def impute(method: str, X_nan: np.ndarray, name: str, seed: int) -> np.ndarray:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer

    from elbokit.linear import FactorAnalysis
    from elbokit.nn import VAE

    if method == "column means":
        return np.where(np.isnan(X_nan), np.nanmean(X_nan, axis=0), X_nan)
    if method == "KNNImputer":
        return KNNImputer().fit_transform(X_nan)
    if method == "IterativeImputer":
        return IterativeImputer(random_state=seed).fit_transform(X_nan)
    if method == "FA":
        return FactorAnalysis(LATENT[name], random_state=seed).fit(X_nan).impute(X_nan)
    vae = VAE(seed=seed, progress=False).fit(X_nan)  # "auto": the standardized Gaussian
    return vae.impute(X_nan, random_state=seed)


def rmse(filled: np.ndarray, X: np.ndarray, X_nan: np.ndarray, columns=slice(None)) -> float:
    """The RMSE in standard deviations on the removed entries of ``columns``."""
    missing = np.isnan(X_nan)[:, columns]
    errors = ((filled - X) / X.std(axis=0))[:, columns]
    return float(np.sqrt(np.mean(errors[missing] ** 2)))


def near_constant(X: np.ndarray) -> np.ndarray:
    """The columns of X where one value fills at least 99% of the rows."""
    return np.array([np.unique(column, return_counts=True)[1].max() >= 0.99 * len(X)
                     for column in X.T])


def linear_enough(scores: dict[str, list[float]]) -> str:
    """The verdict of the module docstring's "linear enough?" from each method's RMSE
    per seed (the same masks for every method)."""
    linear = min(LINEAR, key=lambda m: statistics.mean(scores[m]))
    gain = [lin - vae for lin, vae in zip(scores[linear], scores["VAE"])]  # > 0: VAE better
    mean, name = statistics.mean(gain), "FA" if linear == "FA" else "Iterative"
    if min(gain) > 0:
        return f"no: VAE {mean:.3f} better"
    if max(gain) < 0:
        return f"yes: {name} {-mean:.3f} better"
    return f"tie: {name} {-mean:+.3f} ({-max(gain):+.3f} to {-min(gain):+.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--datasets", nargs="+", default=["wine", "breast_cancer", "digits"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.datasets:
        X = load(name)
        for rate in RATES:
            scores = {m: [] for m in METHODS}
            aside = {m: [] for m in METHODS}  # near-constant columns left out
            seconds = {m: [] for m in METHODS}
            rare = near_constant(X)
            for seed in args.seeds:
                X_nan = remove(X, rate, seed)
                for method in METHODS:
                    start = time.perf_counter()
                    filled = impute(method, X_nan, name, seed)
                    seconds[method].append(time.perf_counter() - start)
                    scores[method].append(rmse(filled, X, X_nan))
                    aside[method].append(rmse(filled, X, X_nan, ~rare))
            best = min(METHODS[1:], key=lambda m: statistics.mean(scores[m]))
            row = [name, f"{X.shape[0]}x{X.shape[1]}", f"{rate:.0%}"]
            for method in METHODS:
                s = scores[method]
                cell = f"{statistics.mean(s):.3f} ({min(s):.3f}-{max(s):.3f})"
                row.append(f"**{cell}**" if method == best else cell)
            row.append(linear_enough(scores))
            other = min(METHODS[1:-1], key=lambda m: statistics.mean(aside[m]))
            row.append(f"{rare.sum()} aside: {other} {statistics.mean(aside[other]):.3f}, VAE "
                       f"{statistics.mean(aside['VAE']):.3f}" if rare.any() else "none")
            row.append(f"{statistics.median(seconds['VAE']):.0f}")
            rows.append(row)
            print(" | ".join(row), flush=True)
    write_table("impute", "Imputation of entries removed at random: RMSE in standard "
                "deviations (mean over seeds, min-max)",
                ["data", "n x d", "removed", *METHODS, "linear enough?",
                 "near-constant columns aside", "VAE s"], rows,
                setup=f"seeds {args.seeds}; {args.threads} thread(s); every method on the raw "
                      "table with NaN; VAE() defaults (likelihood 'auto': the standardized "
                      "Gaussian), impute's 1000 "
                      "importance samples; FA with the factors of fa_tables.py; scikit-learn "
                      "imputers' defaults (IterativeImputer(random_state=seed))",
                notes="Bold: the best of the four methods (column means excluded). 'linear "
                      "enough?': the VAE against the better linear imputer (IterativeImputer "
                      "or FA), paired by seed; no: the VAE better on every seed; yes: the "
                      "linear one better on every seed; tie: the seeds disagree (its RMSE "
                      "minus the VAE's, mean and range). 'VAE s': median seconds of a VAE fit "
                      "plus its imputation.", order=40)


if __name__ == "__main__":
    main()
