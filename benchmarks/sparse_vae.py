"""Peak memory and time of a VAE fitted on a sparse cells x genes count matrix (issue 32):
the same seeded counts given as a scipy CSR matrix (kept sparse, each minibatch densified
as it is drawn: elbokit.nn._rows) and as the dense float32 array, each in a fresh
process. Peak memory: the process's maximum resident set (ru_maxrss), and its rise over
the resident set just before ``fit`` (the data already built). Default settings
(likelihood "auto": the negative binomial of counts) except ``epochs`` and
``progress=False``; one torch thread.

    .venv/bin/python benchmarks/sparse_vae.py [--cells 20000 60000] [--genes 2000]
        [--density 0.05] [--epochs 3] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from scipy import sparse
torch.set_num_threads(1)
from elbokit.nn import VAE

mode, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
density, epochs = float(sys.argv[4]), int(sys.argv[5])
rng = np.random.default_rng(0)
per_row = max(1, round(density * d))  # the non-zero genes of each cell, seeded
columns = np.concatenate([np.sort(rng.choice(d, per_row, replace=False)) for _ in range(n)])
values = (rng.poisson(2.0, size=n * per_row) + 1).astype(np.float32)
X = sparse.csr_matrix((values, columns.astype(np.int32), np.arange(0, n * per_row + 1, per_row)),
                      shape=(n, d))
del columns, values
if mode == "dense":
    X = X.toarray()
kib = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
before = kib()
start = time.perf_counter()
vae = VAE(epochs=epochs, seed=0, progress=False).fit(X)
seconds = time.perf_counter() - start
data_mib = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes if mode == "sparse"
            else X.nbytes) / 2**20
print(json.dumps({"mode": mode, "peak_mib": kib() / 1024, "before_mib": before / 1024,
                  "data_mib": data_mib,
                  "seconds": seconds, "likelihood": vae.architecture_.likelihood,
                  "epochs": len(vae.history_), "score": float(vae.score(X[:2000]))}))
"""


def run(mode: str, cells: int, args) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(cells), str(args.genes),
                          str(args.density), str(args.epochs)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[20000, 60000])
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _results import write_table

    rows = []
    for cells in args.cells:
        for _ in range(args.repeats):
            for mode in ("sparse", "dense"):  # alternated, each in a fresh process
                result = run(mode, cells, args)
                print(cells, result, flush=True)
                rows.append([f"{cells:,}", mode, f"{result['data_mib']:.0f}",
                             f"{result['peak_mib']:.0f}",
                             f"{result['peak_mib'] - result['before_mib']:.0f}",
                             f"{result['seconds']:.1f}", f"{result['score']:.2f}"])
    write_table("sparse_vae", f"VAE on a sparse cells x {args.genes} count matrix "
                f"({args.density:.0%} non-zero), {args.epochs} epochs",
                ["cells", "input", "data MiB", "peak RSS MiB", "rise during fit MiB",
                 "fit s", "ELBO of 2,000 rows"], rows,
                setup="default VAE (likelihood auto: nb), one torch thread, seed 0; each "
                      "fit in a fresh process; rise: peak RSS minus the RSS before fit")


if __name__ == "__main__":
    main()
