"""The joint updates against the lecture's EM-style alternating schedule, on digits.

Every run trains the same VAE (64-128-L MLP encoder, mirrored decoder, Bernoulli
likelihood on the [0, 1] intensities, L_B with one sample, Adam at ``--lr``, batch
128, seed 0) on the digits training split; only ``schedule`` differs: ``joint`` (every
step updates encoder and decoder) and ``alternating`` with E/M phases of 1+1 and of
one epoch each (12+12 steps). Printed: the training ELBO per epoch of each run
(nats per image; an alternating step updates half the weights) and the test ELBO at
the end (L_B, 10 samples per image).

    nice -n 19 .venv/bin/python benchmarks/schedules.py --epochs 10
"""

from __future__ import annotations

import argparse

from _results import write_table
from elbokit.data import load
from elbokit.nn import VAE

RUNS = {
    "joint": dict(schedule="joint"),
    "alternating 1+1": dict(schedule="alternating", e_steps=1, m_steps=1),
    "alternating 12+12": dict(schedule="alternating", e_steps=12, m_steps=12),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    digits = load("digits")
    curves, test = {}, {}
    for name, schedule in RUNS.items():
        vae = VAE(args.latent, hidden=(128,), epochs=args.epochs, lr=args.lr, progress=False,
                  **schedule).fit(digits.train)
        curves[name] = [h["train_elbo"] for h in vae.history_]
        test[name] = float(vae.elbo(digits.test, "b", n_samples=10).mean())
    print("epoch  " + "  ".join(f"{name:>18}" for name in RUNS))
    for epoch in range(args.epochs):
        print(f"{epoch + 1:5d}  " + "  ".join(f"{curves[name][epoch]:18.2f}" for name in RUNS))
    print("test   " + "  ".join(f"{test[name]:18.2f}" for name in RUNS))
    marks = sorted({0, args.epochs // 2, args.epochs - 1})
    write_table("schedules", "Joint and EM-style (alternating) training on digits",
                ["schedule", "training ELBO after " + " / ".join(str(e + 1) for e in marks)
                 + " epochs", "test ELBO (nats)"],
                [[name, " / ".join(f"{curves[name][e]:.1f}" for e in marks), f"{test[name]:.2f}"]
                 for name in RUNS],
                setup=f"Digits, L = {args.latent}, one 128-unit layer, lr {args.lr}.", order=14)


if __name__ == "__main__":
    main()
