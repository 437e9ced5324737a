"""Torch threads for a VAE fit on a 2-core machine (issue 32): seconds of the same fit with
1 and with 2 threads, on tables of three sizes, with the machine's load average recorded
beside each (the machine is shared: its load is what it is when the script runs).

The fits: compare's VAE (gaussian, hidden 256, L = 10), a fixed number of epochs, no
validation; rows of standard normal noise of the tables' shapes (the time does not depend
on the values). Each cell is the best of ``--repeats`` fits.

    .venv/bin/python benchmarks/threads.py [--repeats 2] [--machine idle]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from _results import RESULTS, write_table

from elbokit.nn import VAE

SHAPES = ((560, 765, 20), (1437, 64, 20), (12000, 784, 2))  # rows, features, epochs


def seconds(rows: int, features: int, epochs: int, threads: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    X = np.random.default_rng(0).standard_normal((rows, features)).astype(np.float32)
    best = float("inf")
    for _ in range(repeats):
        vae = VAE(10, likelihood="gaussian", hidden=(256,), epochs=epochs, progress=False,
                  validation_fraction=0, device="cpu")
        start = time.perf_counter()
        vae.fit(X)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shapes", type=int, default=len(SHAPES),
                        help="the first N tables only")
    parser.add_argument("--machine", default="loaded",
                        help="the machine's state, in the title and the file name: "
                             "loaded (threads.json) or idle (threads-idle.json)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out) if args.out else \
        RESULTS / ("threads.json" if args.machine == "loaded" else f"threads-{args.machine}.json")
    rows = []
    for n, d, epochs in SHAPES[:args.shapes]:
        load = os.getloadavg()[0]
        one = seconds(n, d, epochs, 1, args.repeats)
        two = seconds(n, d, epochs, 2, args.repeats)
        row = [f"{n} x {d}", epochs, f"{load:.1f}", f"{one:.2f}", f"{two:.2f}",
               f"{two / one:.2f}"]
        print(" | ".join(str(c) for c in row), flush=True)
        rows.append(row)
    name = "threads" if args.machine == "loaded" else f"threads-{args.machine}"
    write_table(name, f"Torch threads of a VAE fit on a 2-core machine, {args.machine}",
                ["table", "epochs", "load average (1 min)", "1 thread s", "2 threads s",
                 "2 / 1"], rows, order=41 if args.machine == "loaded" else 42,
                setup=f"compare's VAE (gaussian, hidden 256, L = 10), best of {args.repeats}; "
                      f"{os.cpu_count()} cores",
                notes="2 / 1 above 1: the second thread slows the fit down.",
                out=out)


if __name__ == "__main__":
    main()
