"""Results files of the benchmarks: each script writes its table with the command, date,
machine and commit to benchmarks/results/<benchmark>-<date>.json, which
benchmarks/render_docs.py renders into docs/benchmarks.md."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=RESULTS.parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance() -> dict:
    """command, date, commit and machine of this run."""
    return {"command": " ".join([Path(sys.executable).name] + sys.argv),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": git_commit(),
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                       f"{os.cpu_count()} CPUs"}


def write_table(benchmark: str, title: str, columns: list[str], rows: list[list], *,
                setup: str = "", notes: str = "", out: Path | None = None, order: int = 50) -> Path:
    """Write one run's table (cells formatted as printed) and return the file."""
    record = {"benchmark": benchmark, "title": title, "order": order, **provenance(),
              "setup": setup, "notes": notes, "columns": list(columns),
              "rows": [[str(cell) for cell in row] for row in rows]}
    path = out or RESULTS / f"{benchmark}-{record['date'][:10]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"results written to {path}")
    return path


def write_markdown(benchmark: str, title: str, lines: list[str], **options) -> Path:
    """write_table from the Markdown table a script printed (header, rule, rows)."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")]
             for line in "\n".join(lines).splitlines() if line.strip().startswith("|")]
    return write_table(benchmark, title, cells[0], cells[2:], **options)
