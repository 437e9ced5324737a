"""Factor analysis: elbokit (defaults) vs scikit-learn (defaults, and run to convergence)
on real tables.

80/20 seeded split (seed 0) of each data set, raw and standardized (by the training
split's means and standard deviations, the same arrays for both libraries); the same
number of factors for both. Fit times are the median of ``--repeats`` fits alternating
which library goes first, in one process, after one untimed fit of each; the ratio is elbokit / scikit-learn (target
<= 1). Log-likelihoods are nats per sample, train and test, against scikit-learn's
default and against scikit-learn converged (tol=1e-10, ``--converged-max-iter``
iterations at most; ``s conv``: its fit time, once). Constant columns are dropped first (digits has 3 all-zero pixels):
scikit-learn floors their noise variance at 1e-12 (+13 nats per constant column).
Results go to benchmarks/results/fa_tables.json (command, date, commit, machine).

    .venv/bin/python benchmarks/fa_tables.py [--datasets breast_cancer wine ...] [--repeats 5]
    .venv/bin/python benchmarks/fa_tables.py --render    # the table from the JSON
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from _results import provenance

LATENT = {"breast_cancer": 4, "wine": 3, "diabetes": 3, "iris": 2, "digits": 10}


def load(name: str) -> np.ndarray:
    from sklearn import datasets

    X = getattr(datasets, f"load_{name}")().data.astype(np.float64)
    return X[:, X.var(axis=0) > 0]


def split(X: np.ndarray, seed: int = 0):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, test_size=0.2, random_state=seed)


def timed(fit):
    start = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - start


def compare(train, test, latent, repeats, converged_max_iter):
    from sklearn.decomposition import FactorAnalysis as SkFactorAnalysis

    import elbokit

    fits = {"elbokit": lambda: elbokit.FactorAnalysis(latent).fit(train),
            "sklearn": lambda: SkFactorAnalysis(latent, random_state=0).fit(train)}
    times, models = {"elbokit": [], "sklearn": []}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Heywood cases: counted in the table
        for name in fits:  # one untimed fit each first: imports and caches of the process
            fits[name]()
        for r in range(repeats):
            for name in (("elbokit", "sklearn") if r % 2 == 0 else ("sklearn", "elbokit")):
                models[name], seconds = timed(fits[name])
                times[name].append(seconds)
        models["converged"], s_converged = timed(lambda: SkFactorAnalysis(
            latent, tol=1e-10, max_iter=converged_max_iter, random_state=0).fit(train))
    ours = models["elbokit"]
    row = {"s_elbokit": statistics.median(times["elbokit"]),
           "s_sklearn": statistics.median(times["sklearn"]),
           "s_sklearn_converged": s_converged,  # one fit: how long scikit-learn needs to
           # reach (about) the maximum elbokit's default reaches
           "heywood": int(len(ours.heywood_features_)),
           "gradient_norm": float(ours.convergence_["gradient_norm"]),
           "converged": bool(ours.convergence_["converged"])}
    row["ratio"] = row["s_elbokit"] / row["s_sklearn"]
    for part, data in (("train", train), ("test", test)):
        for name in ("elbokit", "sklearn", "converged"):
            row[f"{part}_{name}"] = float(models[name].score(data))
    return row


def print_row(name, scaling, latent, row):
    print(f"{name:<14}{scaling:<5}{latent:>3}{row['train_elbokit']:>11.3f}"
          f"{row['train_elbokit'] - row['train_sklearn']:>+9.3f}"
          f"{row['train_elbokit'] - row['train_converged']:>+10.4f}{row['test_elbokit']:>11.3f}"
          f"{row['test_elbokit'] - row['test_sklearn']:>+9.3f}"
          f"{row['test_elbokit'] - row['test_converged']:>+10.4f}{row['s_elbokit']:>8.3f}"
          f"{row['s_sklearn']:>8.3f}{row['ratio']:>7.2f}{row['s_sklearn_converged']:>8.2f}"
          f"{row['heywood']:>4}"
          f"{row['gradient_norm']:>9.1e}", flush=True)


def render(path: Path) -> str:
    """The table of docs/benchmarks.md, from a results file this script wrote."""
    result = json.loads(Path(path).read_text())
    lines = [f"({result['command']}, {result['date'][:10]}, commit {result['commit'][:7]}, "
             f"{result['machine']})",
             f"{'data':<14}{'scaling':<8}{'L':>3}{'train':>10}{'- sk':>8}{'- sk conv':>11}"
             f"{'test':>10}{'- sk':>8}{'- sk conv':>11}{'s ours':>8}{'s sk':>7}{'ratio':>7}"
             f"{'s conv':>8}{'heywood':>8}"]
    for row in result["rows"]:
        lines.append(
            f"{row['data']:<14}{row['scaling']:<8}{row['n_factors']:>3}"
            f"{row['train_elbokit']:>10.3f}{row['train_elbokit'] - row['train_sklearn']:>+8.3f}"
            f"{row['train_elbokit'] - row['train_converged']:>+11.4f}{row['test_elbokit']:>10.3f}"
            f"{row['test_elbokit'] - row['test_sklearn']:>+8.3f}"
            f"{row['test_elbokit'] - row['test_converged']:>+11.4f}{row['s_elbokit']:>8.3f}"
            f"{row['s_sklearn']:>7.3f}{row['ratio']:>7.2f}{row['s_sklearn_converged']:>8.2f}"
            f"{row['heywood']:>8}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(LATENT))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--converged-max-iter", type=int, default=20000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "fa_tables.json"))
    parser.add_argument("--render", action="store_true",
                        help="print the table from --out and exit")
    args = parser.parse_args()
    if args.render:
        print(render(Path(args.out)))
        return
    print(f"{'data':<14}{'scl':<5}{'L':>3}{'train':>11}{'-sk':>9}{'-sk conv':>10}{'test':>11}"
          f"{'-sk':>9}{'-sk conv':>10}{'s ours':>8}{'s sk':>8}{'ratio':>7}{'hw':>4}{'grad':>9}")
    rows = []
    for name in args.datasets:
        train, test = split(load(name))
        for scaling in ("raw", "std"):
            if scaling == "std":
                m, s = train.mean(axis=0), train.std(axis=0)
                train_s, test_s = (train - m) / s, (test - m) / s
            else:
                train_s, test_s = train, test
            row = compare(train_s, test_s, LATENT[name], args.repeats, args.converged_max_iter)
            print_row(name, scaling, LATENT[name], row)
            rows.append({"data": name, "scaling": scaling, "n_factors": LATENT[name], **row})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**provenance(), "rows": rows}, indent=1))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
