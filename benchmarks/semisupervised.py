"""Semi-supervised classification with model M2 (Kingma et al. 2014) at default settings:
test accuracy of SemiSupervisedVAE (M2) and of M1+M2 (M2 with likelihood="gaussian" on the
posterior means of an unsupervised VAE, M1) against a logistic regression on the labeled rows
alone and a linear probe (logistic regression) on M1's codes, same labels; M1 is fitted once
and serves both.

    .venv/bin/python benchmarks/semisupervised.py [--data digits fashion-mnist]
        [--seeds 0 1 2] [--max-minutes 0] [--jobs 1] [--alphas 0.1 0.3 1 3 10]

digits: 50 labels (5 per class); fashion-mnist: 100 labels (10 per class). ``--max-minutes``
(> 0) budgets each neural fit's training (the models' own ``max_minutes`` setting), the
only change from the defaults; ``--jobs``: seeds run in that many processes at once (one
thread each). ``--alphas``: choose M2's ``alpha`` instead, by accuracy on a held-out 20% of
the TRAINING rows (labels drawn from the other 80%; the test set untouched), written to
results/semisupervised-alpha-<data>-<date>.json. Writes
benchmarks/results/semisupervised-<data>-<date>.json (benchmarks/_results.py: the command,
date, machine and commit with the table).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from elbokit.data import load
from _results import write_table
from elbokit.nn import VAE, SemiSupervisedVAE

LABELS_PER_CLASS = {"digits": 5, "fashion-mnist": 10}


def labeled_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                           for c in np.unique(labels)])


def probe(train, train_labels, test, test_labels) -> float:
    clf = LogisticRegression(max_iter=2000).fit(train, train_labels)
    return float((clf.predict(test) == test_labels).mean())


def run(data: str, seed: int, max_minutes: float) -> dict:
    ds = load(data)
    rows = labeled_subset(ds.train_labels, LABELS_PER_CLASS[data], seed)
    y = np.full(len(ds.train), -1)
    y[rows] = ds.train_labels[rows]
    budget = {"max_minutes": max_minutes} if max_minutes else {}
    out = {"seed": seed, "labels": len(rows)}
    out["logistic"] = probe(ds.train[rows], y[rows], ds.test, ds.test_labels)
    start = time.perf_counter()
    m1 = VAE(seed=seed, progress=False, **budget).fit(ds.train)  # the probe's VAE and M1
    out["vae_seconds"] = time.perf_counter() - start
    codes, test_codes = m1.transform(ds.train), m1.transform(ds.test)  # posterior means
    out["vae_probe"] = probe(codes[rows], y[rows], test_codes, ds.test_labels)
    start = time.perf_counter()
    m2 = SemiSupervisedVAE(seed=seed, progress=False, **budget).fit(ds.train, y)
    out["m2_seconds"] = time.perf_counter() - start
    out["m2_epochs"] = len(m2.history_)
    out["m2"] = float((m2.predict(ds.test) == ds.test_labels).mean())
    # M1+M2: what make_pipeline(VAE(), SemiSupervisedVAE(likelihood="gaussian")).fit(X, y)
    # does, its VAE (M1) the one fitted above; M2 on the codes has its own budget
    start = time.perf_counter()
    stacked = SemiSupervisedVAE(likelihood="gaussian", seed=seed, progress=False,
                                **budget).fit(codes, y)
    out["m1m2_seconds"] = out["vae_seconds"] + time.perf_counter() - start
    out["m1m2_epochs"] = len(stacked.history_)
    out["m1m2"] = float((stacked.predict(test_codes) == ds.test_labels).mean())
    print(data, out, flush=True)
    return out


def choose_alpha(data: str, seed: int, alpha: float, max_minutes: float) -> float:
    """Accuracy of M2 with ``alpha`` on held-out rows of the TRAINING set (the test set
    untouched): a seeded 20% of the training rows held out, the labels drawn from the
    rest, M2 fitted on the rest."""
    ds = load(data)
    order = np.random.default_rng(1000 + seed).permutation(len(ds.train))
    held, kept = order[:len(order) // 5], order[len(order) // 5:]
    X, labels = ds.train[kept], ds.train_labels[kept]
    rows = labeled_subset(labels, LABELS_PER_CLASS[data], seed)
    y = np.full(len(X), -1)
    y[rows] = labels[rows]
    budget = {"max_minutes": max_minutes} if max_minutes else {}
    m2 = SemiSupervisedVAE(seed=seed, alpha=alpha, progress=False, **budget).fit(X, y)
    accuracy = float((m2.predict(ds.train[held]) == ds.train_labels[held]).mean())
    print(data, {"seed": seed, "alpha": alpha, "accuracy": accuracy,
                 "epochs": len(m2.history_)}, flush=True)
    return accuracy


def write_alpha(data: str, table: dict, seeds: list[int], max_minutes: float) -> None:
    rows = [[alpha, *(f"{100 * a:.1f}" for a in accuracies),
             f"{100 * np.median(accuracies):.1f}"] for alpha, accuracies in table.items()]
    budget = f", max_minutes={max_minutes} per fit" if max_minutes else ""
    write_table(f"semisupervised-alpha-{data}", f"Semi-supervised {data}: M2's alpha chosen "
                f"on held-out training rows ({LABELS_PER_CLASS[data]} labels per class), "
                "accuracy (%)", ["alpha", *(f"seed {s}" for s in seeds), "median"], rows,
                setup=f"default settings but alpha{budget}; 20% of the training rows held out "
                "(seeded), labels drawn from the rest; torch.set_num_threads(1)")


def _one_thread() -> None:
    torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", nargs="+", default=["digits", "fashion-mnist"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-minutes", type=float, default=0.0)
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel")
    parser.add_argument("--alphas", nargs="+", type=float, default=None,
                        help="choose alpha instead: accuracy on held-out training rows")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine's cores are shared
    for data in args.data:
        if args.alphas:
            table = {alpha: [choose_alpha(data, seed, alpha, args.max_minutes)
                             for seed in args.seeds] for alpha in args.alphas}
            write_alpha(data, table, args.seeds, args.max_minutes)
            continue
        if args.jobs > 1:  # seeds in parallel processes, one thread each
            with multiprocessing.get_context("spawn").Pool(args.jobs, _one_thread) as pool:
                runs = pool.starmap(run, [(data, seed, args.max_minutes) for seed in args.seeds])
        else:
            runs = [run(data, seed, args.max_minutes) for seed in args.seeds]
        write(data, runs, args.max_minutes)


def write(data: str, runs: list[dict], max_minutes: float, notes: str = "") -> None:
    """One table row per seed and the medians: test accuracy (%) of each method, and the
    seconds and epochs of M2 and of M1+M2 (M1's seconds included)."""
    keys = ("logistic", "vae_probe", "m2", "m1m2")
    rows = [[r["seed"], *(f"{100 * r[k]:.1f}" for k in keys), f"{r['m2_seconds']:.0f}",
             r["m2_epochs"], f"{r['m1m2_seconds']:.0f}", r["m1m2_epochs"]] for r in runs]
    rows.append(["median", *(f"{100 * np.median([r[k] for r in runs]):.1f}" for k in keys),
                 "", "", "", ""])
    budget = (f", max_minutes={max_minutes} per neural fit (M1+M2: M1's and M2's each)"
              if max_minutes else "")
    write_table(f"semisupervised-{data}", f"Semi-supervised {data}: "
                f"{LABELS_PER_CLASS[data]} labels per class, test accuracy (%)",
                ["seed", "logistic regression (labeled rows)", "linear probe on VAE codes",
                 "M2 (SemiSupervisedVAE)", "M1+M2", "M2 seconds", "M2 epochs",
                 "M1+M2 seconds", "M1+M2 epochs (M2's)"], rows,
                setup=f"default settings{budget}; M1+M2: M2 with likelihood='gaussian' on "
                "the posterior means of the probe's VAE (M1, fitted once for both); "
                "torch.set_num_threads(1) on 2 shared cores", notes=notes)

if __name__ == "__main__":
    main()
