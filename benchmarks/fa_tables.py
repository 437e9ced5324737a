"""Factor analysis: elbokit (defaults) vs scikit-learn (defaults) on real tables.

80/20 seeded split (seed 0) of each data set, raw and standardized (by the training
split's means and standard deviations, the same arrays for both libraries); the same
number of factors for both. Prints train and test log-likelihood in nats per sample
and the differences (elbokit - scikit-learn). Constant columns are dropped first
(digits has 3 all-zero pixels): scikit-learn floors their noise variance at 1e-12
(+13 nats per constant column), elbokit at 1e-3 of the mean variance.

    .venv/bin/python benchmarks/fa_tables.py [--datasets breast_cancer wine ...]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

LATENT = {"breast_cancer": 4, "wine": 3, "diabetes": 3, "iris": 2, "digits": 10}


def load(name: str) -> np.ndarray:
    from sklearn import datasets

    X = getattr(datasets, f"load_{name}")().data.astype(np.float64)
    return X[:, X.var(axis=0) > 0]


def split(X: np.ndarray, seed: int = 0):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, test_size=0.2, random_state=seed)


def compare(train, test, latent):
    from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis

    import elbokit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Heywood-case warnings are reported by name elsewhere
        start = time.perf_counter()
        ours = elbokit.FactorAnalysis(latent).fit(train)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        theirs = SkFactorAnalysis(latent, random_state=0).fit(train)
        t_theirs = time.perf_counter() - start
    return (ours.score(train), theirs.score(train), ours.score(test), theirs.score(test),
            t_ours, t_theirs, len(ours.heywood_features_))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(LATENT))
    args = parser.parse_args()
    header = (f"{'data':<15}{'scaling':<9}{'L':>3}{'train ours':>12}{'train sk':>12}"
              f"{'diff':>9}{'test ours':>12}{'test sk':>12}{'diff':>9}{'s ours':>8}"
              f"{'s sk':>8}{'heywood':>8}")
    print(header)
    worst_train = worst_test = np.inf
    for name in args.datasets:
        train, test = split(load(name))
        for scaling in ("raw", "std"):
            if scaling == "std":
                m, s = train.mean(axis=0), train.std(axis=0)
                train_s, test_s = (train - m) / s, (test - m) / s
            else:
                train_s, test_s = train, test
            tr_o, tr_s, te_o, te_s, t_o, t_s, hw = compare(train_s, test_s, LATENT[name])
            worst_train, worst_test = min(worst_train, tr_o - tr_s), min(worst_test, te_o - te_s)
            print(f"{name:<15}{scaling:<9}{LATENT[name]:>3}{tr_o:>12.3f}{tr_s:>12.3f}"
                  f"{tr_o - tr_s:>+9.3f}{te_o:>12.3f}{te_s:>12.3f}{te_o - te_s:>+9.3f}"
                  f"{t_o:>8.2f}{t_s:>8.2f}{hw:>8}")
    print(f"\nworst train difference {worst_train:+.4f} nats/sample (target >= -1e-3); "
          f"worst test difference {worst_test:+.4f}")


if __name__ == "__main__":
    main()
