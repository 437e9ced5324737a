"""Semi-supervised classification with model M2 (Kingma et al. 2014) at default settings:
test accuracy of SemiSupervisedVAE (M2) and of M1+M2 (M2, its default likelihood "auto" the
standardized Gaussian there, on the posterior means of an unsupervised VAE, M1) against a logistic regression on the labeled rows
alone, a linear probe (logistic regression) on M1's codes, same labels (M1 is fitted once and
serves both), and scikit-learn's semi-supervised reference, ``LabelSpreading`` on the pixels
with the same labels (its k-nearest-neighbour kernel, 7 neighbours: the default RBF kernel is
a dense n x n matrix, 29 GB for Fashion-MNIST).

    .venv/bin/python benchmarks/semisupervised.py [--data digits fashion-mnist]
        [--seeds 0 1 2] [--max-minutes 0] [--jobs 1] [--alphas 0.1 0.3 1 3 10]

digits: 50 labels (5 per class); fashion-mnist and mnist (where its IDX files are given,
``$ELBOKIT_DATA``): 100 labels (10 per class). ``--max-minutes``
(> 0) budgets each neural fit's training (the models' own ``max_minutes`` setting), the
only change from the defaults; ``--jobs``: seeds run in that many processes at once (one
thread each). ``--alphas``: choose M2's ``alpha`` instead, by accuracy on a held-out 20% of
the TRAINING rows (labels drawn from the other 80%; the test set untouched), written to
results/semisupervised-alpha-<data>-<date>.json. Writes
benchmarks/results/semisupervised-<data>-<date>.json (benchmarks/_results.py: the command,
date, machine and commit with the table).

    .venv/bin/python benchmarks/semisupervised.py --curve --data fashion-mnist [--seeds 0]
        [--max-minutes 30]

``--curve``: whether M2 on the pixels wants more compute: its test accuracy after each
epoch of one default fit under the budget, written to
results/semisupervised-curve-<data>-<date>.json.

    .venv/bin/python benchmarks/semisupervised.py --speed [--rounds 3]

``--speed``: seconds of M2's whole fit (validation included) at default settings,
elbokit's against the enumeration as the paper's code writes it, each unlabeled row
copied K times through the whole encoder (elbokit's encoders compute the row's part of
their first layer once, :meth:`~elbokit.nn.model.VAENetwork.encode_posterior_each`):
the two sides alternate in one process on the same data and seed, medians and the
median of each round's ratio; the last column checks that both fits end at the same
validation bound. Written to results/semisupervised-speed-<date>.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelSpreading

from elbokit.data import load
from _results import write_table
from elbokit.nn import VAE, SemiSupervisedVAE

LABELS_PER_CLASS = {"digits": 5, "fashion-mnist": 10, "mnist": 10}


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
    spreading = LabelSpreading(kernel="knn").fit(ds.train, y)
    out["spreading"] = float((spreading.predict(ds.test) == ds.test_labels).mean())
    out["spreading_seconds"] = time.perf_counter() - start
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
    # M1+M2: what make_pipeline(VAE(), SemiSupervisedVAE()).fit(X, y)
    # does, its VAE (M1) the one fitted above; M2 on the codes has its own budget
    start = time.perf_counter()
    stacked = SemiSupervisedVAE(seed=seed, progress=False,
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


SPEED_CASES = (  # (name, data set, training rows, settings beyond the defaults)
    ("digits, MLP", "digits", None, {}),
    ("fashion-mnist[:6000], MLP", "fashion-mnist", 6000, {"epochs": 2}),
    ("fashion-mnist[:6000], conv", "fashion-mnist", 6000, {"epochs": 2, "arch": "conv"}),
)


def speed(rounds: int) -> None:
    from elbokit.nn.model import VAENetwork

    own, copies = VAENetwork.encode_posterior_each, VAENetwork.encode_posterior_copies
    rows = []
    for name, data, n, settings in SPEED_CASES:
        ds = load(data)
        X, labels = ds.train[:n], ds.train_labels[:n]
        y = np.full(len(X), -1)
        picked = labeled_subset(labels, LABELS_PER_CLASS[data], 0)
        y[picked] = labels[picked]
        if settings.get("arch") == "conv":
            settings = {**settings, "image_shape": ds.image_shape}
        seconds = {"elbokit": [], "repeated": []}
        bound = {}
        for r in range(rounds):
            for side in (("elbokit", "repeated") if r % 2 == 0 else ("repeated", "elbokit")):
                VAENetwork.encode_posterior_each = own if side == "elbokit" else copies
                try:
                    start = time.perf_counter()
                    m2 = SemiSupervisedVAE(seed=0, progress=False, **settings).fit(X, y)
                    seconds[side].append(time.perf_counter() - start)
                finally:
                    VAENetwork.encode_posterior_each = own
                bound[side] = m2.history_[-1].get("val_elbo", float("nan"))
        ratios = [b / a for a, b in zip(seconds["elbokit"], seconds["repeated"])]
        row = [name, f"{len(X)}x{X.shape[1]}", len(m2.history_),
               f"{np.median(seconds['elbokit']):.1f}", f"{np.median(seconds['repeated']):.1f}",
               f"{np.median(ratios):.2f}x",
               f"{bound['elbokit']:.3f} / {bound['repeated']:.3f}"]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    write_table("semisupervised-speed", "M2's fit: the rows' part of the encoder computed "
                "once (elbokit) against each row copied through it for every class",
                ["data, networks", "rows x d", "epochs", "elbokit s", "repeated s",
                 "speed-up (median of rounds)", "last validation bound (elbokit / repeated)"],
                rows, setup=f"SemiSupervisedVAE defaults (seed 0) but the epochs named in the "
                f"first column; labels {LABELS_PER_CLASS}; {rounds} rounds, the sides "
                "alternating; seconds of the whole fit (validation included), medians; "
                "torch.set_num_threads(1)", notes="repeated: VAENetwork.encode_posterior_each "
                "replaced by encode_posterior_copies, the enumeration of the paper's code "
                "(every unlabeled row copied K times, all through the encoder).")


def curve(data: str, seed: int, max_minutes: float) -> None:
    """Does M2 on the pixels want more compute? Test accuracy of q(y|x) after each epoch
    of one default fit under a ``max_minutes`` budget (the test set only reported, never
    used to choose), against the logistic regression on the same labeled rows."""
    from elbokit.nn.callbacks import Callback

    ds = load(data)
    rows = labeled_subset(ds.train_labels, LABELS_PER_CLASS[data], seed)
    y = np.full(len(ds.train), -1)
    y[rows] = ds.train_labels[rows]
    logistic = probe(ds.train[rows], y[rows], ds.test, ds.test_labels)
    test = torch.as_tensor(ds.test, dtype=torch.float32)
    points, start = [], time.perf_counter()

    class Accuracy(Callback):
        def on_epoch_end(self, epoch, record, model):
            with torch.no_grad():
                predicted = model.classify(test).argmax(1).numpy()
            points.append((epoch, time.perf_counter() - start,
                           float((predicted == ds.test_labels).mean())))
            print(data, points[-1], flush=True)

    SemiSupervisedVAE(seed=seed, progress=False, max_minutes=max_minutes).fit(
        ds.train, y, callbacks=[Accuracy()])
    shown = [p for p in points if p[0] in (1, 2) or p[0] % 5 == 0 or p is points[-1]]
    write_table(f"semisupervised-curve-{data}", f"Semi-supervised {data}: M2's test accuracy "
                f"epoch by epoch ({LABELS_PER_CLASS[data]} labels per class, seed {seed})",
                ["epoch", "seconds", "M2 test accuracy (%)"],
                [[e, f"{t:.0f}", f"{100 * a:.1f}"] for e, t, a in shown],
                setup=f"SemiSupervisedVAE defaults, max_minutes={max_minutes}; q(y|x) on the "
                f"test set after each epoch (the callback's seconds counted); logistic "
                f"regression on the same labeled rows: {100 * logistic:.1f}%; "
                "torch.set_num_threads(1)",
                notes=f"Best epoch: {max(points, key=lambda p: p[2])[0]} "
                f"({100 * max(p[2] for p in points):.1f}%).")


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
    parser.add_argument("--speed", action="store_true",
                        help="time M2's fit against the repeated-rows enumeration instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--curve", action="store_true",
                        help="M2's test accuracy epoch by epoch under --max-minutes (default "
                             "30) instead, first seed")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the machine's cores are shared
    if args.speed:
        speed(args.rounds)
        return
    if args.curve:
        for data in args.data:
            curve(data, args.seeds[0], args.max_minutes or 30.0)
        return
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
    keys = ("logistic", "vae_probe", "spreading", "m2", "m1m2")
    rows = [[r["seed"], *(f"{100 * r[k]:.1f}" for k in keys), f"{r['m2_seconds']:.0f}",
             r["m2_epochs"], f"{r['m1m2_seconds']:.0f}", r["m1m2_epochs"]] for r in runs]
    rows.append(["median", *(f"{100 * np.median([r[k] for r in runs]):.1f}" for k in keys),
                 "", "", "", ""])
    budget = (f", max_minutes={max_minutes} per neural fit (M1+M2: M1's and M2's each)"
              if max_minutes else "")
    write_table(f"semisupervised-{data}", f"Semi-supervised {data}: "
                f"{LABELS_PER_CLASS[data]} labels per class, test accuracy (%)",
                ["seed", "logistic regression (labeled rows)", "linear probe on VAE codes",
                 "LabelSpreading (knn)", "M2 (SemiSupervisedVAE)", "M1+M2", "M2 seconds", "M2 epochs",
                 "M1+M2 seconds", "M1+M2 epochs (M2's)"], rows,
                setup=f"default settings{budget}; M1+M2: M2 (likelihood 'auto': the Gaussian) on "
                "the posterior means of the probe's VAE (M1, fitted once for both); "
                "torch.set_num_threads(1) on 2 shared cores", notes=notes)

if __name__ == "__main__":
    main()
