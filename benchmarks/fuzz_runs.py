"""Longer fuzzing of saved runs: the hypothesis tests of tests/test_fuzz_runs.py with a
large budget (they run with 10 examples per target in `make test`).

    .venv/bin/python benchmarks/fuzz_runs.py            # 1000 examples per target
    .venv/bin/python benchmarks/fuzz_runs.py --examples 5000

Each target (pca, ppca, fa, linear-ae, vbpca and VAE model directories, a VAE
checkpoint, run.json/metrics.json) gets that many mutations; a failure prints the
shrunk mutation (the hypothesis draws) to add to tests/test_hostile_runs.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000,
                        help="mutations per target (default 1000)")
    args = parser.parse_args()
    os.environ["ELBOKIT_FUZZ_EXAMPLES"] = str(args.examples)
    import pytest

    test_file = Path(__file__).resolve().parent.parent / "tests" / "test_fuzz_runs.py"
    start = time.perf_counter()
    code = pytest.main(["-q", "-p", "no:cacheprovider", str(test_file)])
    print(f"{args.examples} examples per target in {time.perf_counter() - start:.0f} s; "
          f"pytest exit code {int(code)}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
