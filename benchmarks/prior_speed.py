"""Training time of the long run's recipe (``benchmarks/recipe.py``: gated 784-300-300-40,
batch 100, dynamic binarization, L_B, EMA, KL warm-up) under each prior, with the
written-out step (``elbokit.nn.objectives.fused``, the default) and with autograd's backward
(``fused_step=False``), in one process.

Every round fits each configuration once, from the same seed, on the first ``--images``
Fashion-MNIST training images for ``--epochs`` epochs (no validation, no checkpoints);
the order of the configurations alternates between rounds (after one untimed
warm-up fit of each). Printed: the median fit time
of each and the median over rounds of its ratio to the standard prior's fused fit.

    .venv/bin/python benchmarks/prior_speed.py                   # 1 thread, 3 rounds
    .venv/bin/python benchmarks/prior_speed.py --threads 2 --components 10,50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_table  # noqa: E402
from recipe import LATENT, RECIPE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--components", default="10",
                        help="comma-separated K for the VampPrior and the mixture")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from elbokit.data import load
    from elbokit.nn import VAE

    X = load("fashion-mnist").train[:args.images]
    sides = [("standard", {})]
    for k in map(int, args.components.split(",")):
        sides += [(f"vamp K={k}", dict(prior="vamp", prior_components=k)),
                  (f"mog K={k}", dict(prior="mog", prior_components=k))]
    configs = [(f"{name}, {step}", {**options, "fused_step": step == "fused"})
               for name, options in sides for step in ("fused", "autograd")]
    times = {name: [] for name, _ in configs}
    for _, options in configs:  # warm-up (first calls, allocator), untimed
        VAE(LATENT, progress=False, seed=0,
            **{**RECIPE, "epochs": 1, "patience": 0, **options}).fit(X[:200])
    for r in range(args.rounds):
        for name, options in (configs if r % 2 == 0 else configs[::-1]):
            vae = VAE(LATENT, progress=False, seed=0,
                      **{**RECIPE, "epochs": args.epochs, "patience": 0, **options})
            start = time.perf_counter()
            vae.fit(X)
            times[name].append(time.perf_counter() - start)
    base = times[configs[0][0]]
    print(f"{args.epochs} epochs on {len(X)} images, {args.threads} torch thread(s), "
          f"{args.rounds} rounds (medians)\n")
    columns = ["prior, backward", "fit (s)", "s / epoch", "x the standard prior's fused fit"]
    print("| " + " | ".join(columns) + " |\n|---|---|---|---|")
    rows = []
    for name, values in times.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        seconds = statistics.median(values)
        rows.append([name, f"{seconds:.2f}", f"{seconds / args.epochs:.2f}", f"{ratio:.2f}"])
        print("| " + " | ".join(rows[-1]) + " |")
    write_table("prior_speed", "The written-out step per prior", columns, rows,
                setup=f"{args.epochs} epochs on {len(X)} Fashion-MNIST images, {args.threads} "
                      f"torch thread(s), {args.rounds} alternating rounds, medians.", order=9)


if __name__ == "__main__":
    main()
