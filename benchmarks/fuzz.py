"""Long fuzzing runs (issue 13): the hypothesis tests of tests/hostile/test_fuzz_data.py (the data
readers) and tests/hostile/test_fuzz_runs.py (saved runs) with a larger budget than ``make test``
gives them (ELBOKIT_FUZZ_EXAMPLES).

    .venv/bin/python benchmarks/fuzz.py data [--examples 5000]   # default 5000 per format
    .venv/bin/python benchmarks/fuzz.py runs [--examples 1000]   # default 1000 per target
    .venv/bin/python benchmarks/fuzz.py saves                    # the long save probes
    .venv/bin/python benchmarks/fuzz.py saves -k "full_disk and fa"   # one of them

Data readers (CSV, .npy, .npz, IDX raw and gzip). Each example mutates a valid file
(byte flips, truncations, hostile tokens, rewritten header fields) and asserts that ``elbokit.data.load`` / ``read_idx`` either returns a
finite, correctly shaped Dataset or raises a one-line DataError / DataFileNotFoundError,
with no warning, allocating less than 32 MiB (tracemalloc). ``make test`` runs 60
examples per format.

Measured (2 shared CPU cores): `data --examples 5000` (4 mutation tests x 5000 files) in
390 s and, with other random examples, 282 s; `--examples 3000` with the CSV oracle test
(5 tests) in 92 s; after the last fix, `--examples 5000` with the no-warning check (5
tests, 25,000 files) in 266 s; no failure. Earlier runs found four bugs, now regression tests in
tests/hostile/test_data_files.py ("fuzzing finds"): the GiB text of an IDX header claiming
2^8000 bytes overflowed a float (OverflowError); a zipfile error quoted 1,900 bytes of
the archive in a "one-line" message; zipfile raised UnicodeDecodeError on a member name
flagged UTF-8 that is not; a long-double .npy beyond float64 printed numpy's
"RuntimeWarning: overflow" (the mutants must now also load without any warning). The
CSV oracle found that a one-column file starting with ``0x10`` was taken as headed.

Saved runs. Each target (pca, ppca, fa, linear-ae, vbpca and VAE model directories, a VAE
checkpoint, run.json/metrics.json) gets that many mutations, and each recorded VAE variant
(VampPrior, mixture prior, gated layers with EMA and the clamp, IAF posterior, conditional;
``evaluate`` and ``sample`` on each) a third as many. Measured 2026-12-01: the variants at
``ELBOKIT_FUZZ_EXAMPLES=100`` (100 each, 1000 commands) in 108 s beside two long runs, no
failure; a failure prints the
shrunk mutation (the hypothesis draws) to add to tests/hostile/test_run_files.py.

Saves (issue 31): tests/hostile/test_save_probes.py with ``ELBOKIT_SAVE_PROBES=long``, for
pca, fa, ppca and a VAE (``make test``: pca, two kills, two limits, one round). SIGKILL
at every file boundary of a ``fit --overwrite`` (each os.replace/os.rename, the
exchange, the carry-over: 8 events for pca, 13 for a VAE with its checkpoint): before
the swap the previous run whole, after it the new one, never a mix; the next start
cleans up and carries the user's files over. ``ulimit -f`` (RLIMIT_FSIZE) from 4 KiB to
past the largest file, and a full disk (an 8 MiB tmpfs, mounted when root, filled to
leave 0 .. twice the run's size free): exit 0 and the new run whole, or exit 2, one line,
the previous run byte for byte. Two ``compare`` writers (L = 3 and L = 4) on one --out,
started together: one writes, the other is refused in one line ("being written by
another elbokit process"); compare.json's latent is every listed run's. The limits start
at 512 B: below 4 KiB joblib (imported by scikit-learn) may warn first, on some systems,
that it cannot make its semaphore; elbokit's line must then be the last line and its
only one (on this machine, 512 B to 3 KiB, elbokit's line was the only one). Each long
probe may run 30 minutes (pytest-timeout's 300 s is make test's).
Measured 2026-12-07 (2 shared cores, beside other work; 200 x 300 table): a kill at each
of the 8 events of a pca, fa and ppca save and the 13 of a VAE's: 37 kills, every run
whole (the previous one before the swap, the new one after); ``ulimit -f`` 4 KiB ..
11 KiB by 512 B: pca 14, ppca 14, fa 19 limits, each "previous run kept" with one line
(FA's EM progress bar aside). Rerun 2026-12-07 (``saves -k "size_limit and vae or
full_disk and fa"``, beside other work): the VAE's ``ulimit -f`` 512 B .. 91 KiB in 12
steps of 7,622 B (48 steps ran past pytest's 300 s): 14 limits, 12 "previous run kept"
with one line, 2 new runs, 114 s; fa on an 8 MiB tmpfs, 0 .. 44 KiB free by 4 KiB: 11
fills, 8 "previous run kept", 3 new runs, 22 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

TARGETS = {"data": ("hostile/test_fuzz_data.py", 5000),
           "runs": ("hostile/test_fuzz_runs.py", 1000),
           "saves": ("hostile/test_save_probes.py", None)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--examples", type=int, default=None,
                        help="examples per format / target (data: 5000, runs: 1000)")
    parser.add_argument("-k", dest="select", default=None,
                        help="only the probes pytest's -k expression selects, e.g. "
                             "'full_disk and fa' or 'size_limit and vae'")
    args = parser.parse_args()
    test_name, default = TARGETS[args.target]
    examples = default if args.examples is None else args.examples
    os.environ["ELBOKIT_FUZZ_EXAMPLES"] = str(examples)
    os.environ["ELBOKIT_SAVE_PROBES"] = "long"  # read by test_save_probes.py only
    import pytest  # after the budget is set: the test modules read it on import

    test_file = Path(__file__).resolve().parent.parent / "tests" / test_name
    start = time.perf_counter()
    select = [] if args.select is None else ["-k", args.select]
    code = pytest.main(["-q", "-s", "-p", "no:cacheprovider", "--durations=4", *select,
                        str(test_file)])
    budget = f"{examples} examples per {args.target} target" if examples else args.target
    print(f"{budget} in {time.perf_counter() - start:.0f} s; pytest exit code {int(code)}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
