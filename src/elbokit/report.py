"""``elbokit report RUN_DIR``: one self-contained HTML page per run directory.

The page embeds every figure as a base64 PNG (no network, no external files), with
the run's resolved settings, its metrics and, for a directory of runs (such as
``runs/demo``), a comparison table across the models.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

from .exceptions import ModelFileError
from .io import MODEL_FILE, atomic_write_bytes, read_json

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 520px; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _run_dirs(path: Path) -> list[Path]:
    if (path / MODEL_FILE).is_file():
        return [path]
    runs = sorted(p for p in path.iterdir() if (p / MODEL_FILE).is_file()) \
        if path.is_dir() else []
    if not runs:
        raise ModelFileError(f"{path} holds no saved model (no {MODEL_FILE} in it or in its "
                             "subdirectories); pass a directory written by `elbokit fit`")
    return runs


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = ""
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            text = f"{value:.3f}" if isinstance(value, float) else ("-" if value is None
                                                                     else str(value))
            cells.append(f"<td>{html.escape(text)}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: str, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_CAPTIONS = {
    "samples": "samples from the model (decoder means of prior draws for a VAE)",
    "reconstructions": "test images and their reconstructions E[x | E[z|x]]",
    "uncertainty": "per-pixel std of decoder means over posterior samples of z",
    "traversals": "latent traversals along the most active dimensions",
    "manifold": "the 2-D latent manifold (Kingma & Welling, fig. 4)",
    "latent": "posterior means of test points, coloured by label",
    "kl_per_dim": "KL per latent dimension (nats)",
    "curves": "training curve",
}


def _section(run_dir: Path, with_figures: bool, datasets: dict) -> tuple[str, dict]:
    from . import data as data_module
    from .models import load_model
    from .plots import all_figures

    run = read_json(run_dir / "run.json", "run file") if (run_dir / "run.json").is_file() else {}
    metrics = read_json(run_dir / "metrics.json", "metrics file") \
        if (run_dir / "metrics.json").is_file() else {}
    meta = read_json(run_dir / MODEL_FILE, "model file")
    parts = [f"<h2>{html.escape(run_dir.name)} ({html.escape(str(meta.get('kind')))})</h2>"]
    metric_rows = [{"metric": k, "value": v} for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
    parts.append(_table(metric_rows, ["metric", "value"]))
    if with_figures and run.get("data"):
        model = load_model(run_dir)
        key = (run["data"], int(run.get("seed", 0)))
        if key not in datasets:  # runs of one directory usually share their data
            datasets[key] = data_module.load(key[0], seed=key[1])
        dataset = datasets[key]
        history = getattr(model, "history_", None) or getattr(model, "loglike_", None)
        if isinstance(history, list) and history and not isinstance(history[0], dict):
            history = list(history)
        figures = all_figures(model, dataset, run_dir / "figures", history=history)
        parts.append("".join(_image(p, _CAPTIONS.get(name, name)) for name, p in figures.items()))
    parts.append("<details><summary>settings (run.json)</summary><pre>"
                 + html.escape(json.dumps(run, indent=2)) + "</pre></details>")
    summary = {"model": run_dir.name, "kind": meta.get("kind")}
    summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    return "\n".join(parts), summary


def write_report(path: str | os.PathLike, *, with_figures: bool = True) -> Path:
    """Write ``report.html`` into ``path`` (a run directory or a directory of runs)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"run directory {path} does not exist")
    sections, summaries, datasets = [], [], {}
    for run_dir in _run_dirs(path):
        section, summary = _section(run_dir, with_figures, datasets)
        sections.append(section)
        summaries.append(summary)
    columns = ["model", "kind"] + [c for c in ("train_loglike", "test_loglike", "test_elbo",
                                               "test_loglike_is", "test_bits_per_dim",
                                               "active_units", "fit_seconds", "iterations")
                                   if any(c in s for s in summaries)]
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>elbokit report: {html.escape(path.name)}</title>"
            f"<style>{_STYLE}</style></head><body>"
            f"<h1>elbokit report: {html.escape(str(path))}</h1>"
            "<p>Log-likelihoods and ELBOs in nats per sample on held-out data.</p>"
            + _table(summaries, columns) + "\n".join(sections) + "</body></html>")
    out = path / REPORT_FILE
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
