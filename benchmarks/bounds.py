"""The multi-sample bounds and gradient estimators on digits, in about a minute.

Each objective trains the same VAE (latent 8, MLP 64, Bernoulli, dynamic binarization,
Adam lr 3e-3 cosine, ``--epochs`` epochs, seed 0) on scikit-learn's digits (intensities
/ 16, 80/20 split of elbokit.data.load("digits")); the table gives the test
log-likelihood (importance sampling, k = ``--k``, the test set binarized once) and the
training time, and each row's paired difference from IWAE's (k = 8) on the same
test images. Same number of draws per point (8) for every multi-sample row.

    nice -n 19 .venv/bin/python benchmarks/bounds.py             # ~1 min on 2 cores
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _results import write_table

ROWS = {
    "b (L_B)": dict(objective="b", n_samples=1),
    "a, stl": dict(objective="a", n_samples=1, gradient="stl"),
    "iwae k=8": dict(objective="iwae", n_samples=8),
    "iwae k=8, dreg": dict(objective="iwae", n_samples=8, gradient="dreg"),
    "miwae (2, 4)": dict(objective="miwae", miwae_m=2, n_samples=4),
    "ciwae 0.5, k=8": dict(objective="ciwae", ciwae_beta=0.5, n_samples=8),
    "piwae (2, 4)": dict(objective="piwae", miwae_m=2, n_samples=4),
    "piwae (2, 4), dreg": dict(objective="piwae", miwae_m=2, n_samples=4, gradient="dreg"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--k", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from elbokit.data import load
    from elbokit.evaluate import log_likelihood
    from elbokit.nn import VAE

    torch.set_num_threads(args.threads)
    digits = load("digits")
    test = (np.random.default_rng(12345).random(digits.test.shape)
            < digits.test).astype(np.float32)
    print(f"digits: train {digits.train.shape}, test {test.shape}; {args.epochs} epochs; "
          f"test log p(x) by importance sampling, k = {args.k}")
    print("| objective | test log p(x) (nats) | vs iwae k=8 (paired) | train (s) |\n"
          "|---|---|---|---|")
    rows, table = {}, []
    for label, settings in ROWS.items():
        start = time.perf_counter()
        vae = VAE(8, hidden=(64,), binarize="dynamic", epochs=args.epochs, lr=3e-3,
                  lr_schedule="cosine", batch_size=64, progress=False, **settings)
        vae.fit(digits.train)
        seconds = time.perf_counter() - start
        ll = rows[label] = log_likelihood(vae, test, n_importance=args.k, random_state=0)
        base = rows.get("iwae k=8")
        vs = ""
        if base is not None and ll is not base:
            diff = ll.values - base.values
            vs = f"{diff.mean():+.2f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.2f}"
        table.append([label, f"{ll.mean:.2f} +- {ll.stderr:.2f}", vs, f"{seconds:.1f}"])
        print("| " + " | ".join(table[-1]) + " |", flush=True)
    write_table("bounds", "Multi-sample bounds and gradient estimators on digits",
                ["objective", "test log p(x) (nats)", "vs iwae k=8 (paired)", "train (s)"], table,
                setup=f"Digits, {args.epochs} epochs, latent 8, one seed; test log p(x) at "
                      f"k = {args.k}.", order=13)


if __name__ == "__main__":
    main()
