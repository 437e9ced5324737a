"""Options shared by several commands, and table printing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..data import DEFAULT_TEST_FRACTION  # noqa: F401  (the default of --test-fraction)

DataSpec = Annotated[str, typer.Option("--data", help="digits, breast-cancer, wine, diabetes, "
                                                      "iris, mnist, fashion-mnist, a "
                                                      ".npy/.npz/.csv path, or a folder of "
                                                      "PNG/JPEG images.")]
Resize = Annotated[Optional[str], typer.Option(
    "--resize", help="Image folders: resize every image to H,W (e.g. 32,32).")]
Crop = Annotated[Optional[str], typer.Option(
    "--crop", help="Image folders: 'center' crops each image about its centre (to the "
                   "smallest size, or to --resize's aspect ratio).")]


def image_size(text: str | None) -> tuple[int, int] | None:
    """--resize H,W as (H, W)."""
    from ..exceptions import ParameterError

    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ParameterError(f"--resize must be two positive integers H,W like 32,32; got "
                             f"{text!r}")
    return size
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Directory of IDX files "
                                                                    "(else $ELBOKIT_DATA).")]
Latent = Annotated[int, typer.Option("--latent", help="Latent dimension L.")]
def _check_seed(value: int) -> int:
    from ..exceptions import ParameterError
    from ..runs import MAX_SEED

    if not 0 <= value <= MAX_SEED:
        raise ParameterError(f"--seed must be an integer in [0, {MAX_SEED}]; got {value}")
    return value


Seed = Annotated[int, typer.Option("--seed", help="Seed of the split and the fit.",
                                   callback=_check_seed)]
TestFraction = Annotated[float, typer.Option(
    "--test-fraction", help="Held-out share for digits, tables and user files, in [0, 1); "
                            "0 fits on every row (no held-out metrics).")]
Columns = Annotated[Optional[str], typer.Option(
    "--columns", help="Tables (a CSV file with a header, a built-in table): the columns to "
                      "use, by name, comma-separated (e.g. A1,A2,A3); the others are not "
                      "read.")]
DropColumns = Annotated[Optional[str], typer.Option(
    "--drop-columns", help="Tables: the columns to leave out, by name, comma-separated "
                           "(e.g. id,gender).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a saved model in --out.")]


def format_table(header: list[str], rows: list[list]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in
                       enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def print_metrics(title: str, metrics: dict) -> None:
    """Print the metrics of one run as a two-column table."""
    rows = [[k, v] for k, v in metrics.items() if not k.endswith("note") and k != "quantity"]
    typer.echo(title)
    typer.echo(format_table(["metric", "value"], rows))
    if "quantity" in metrics:
        typer.echo(f"(values: {metrics['quantity']})")
    if "test_note" in metrics:
        typer.echo(metrics["test_note"])
