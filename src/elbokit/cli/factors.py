"""``elbokit factors --data FILE``: how many factors a table supports, by
:func:`elbokit.linear.suggest_n_factors` (parallel analysis, BIC or held-out
log-likelihood), with the parallel-analysis scree drawn into ``--out``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import app
from .common import Columns, DataDir, DataSpec, DropColumns, Seed

SCREE_FILE = "scree.png"
RESULT_FILE = "factors.json"


@app.command("factors")
def factors(data: DataSpec,
            method: Annotated[str, typer.Option(
                "--method", help="parallel (Horn's parallel analysis on the reduced "
                                 "correlation matrix, as psych::fa.parallel), bic (ML "
                                 "fits, minimum BIC) or heldout (cross-validated "
                                 "log-likelihood; accepts missing values).")] = "parallel",
            max_factors: Annotated[Optional[int], typer.Option(
                "--max-factors", help="Largest number of factors considered (default: "
                                      "as many as the degrees of freedom allow).")] = None,
            n_iter: Annotated[int, typer.Option(
                "--n-iter", help="Random tables of parallel analysis.")] = 20,
            folds: Annotated[int, typer.Option("--folds", help="Folds of heldout.")] = 5,
            out: Annotated[Path, typer.Option(
                "--out", help="Directory for scree.png and factors.json.")] = Path(
                    "runs/factors"),
            columns: Columns = None, drop_columns: DropColumns = None,
            data_dir: DataDir = None, seed: Seed = 0):
    """Suggest the number of factors of a table: print the table behind the suggestion
    and draw the parallel-analysis scree (the data's eigenvalues against random data's)."""
    import numpy as np

    from .. import data as data_module
    from .._validation import check_choice
    from ..linear.n_factors import METHODS, suggest_n_factors
    from ..persistence import atomic_write_json
    from ..plots import parallel_scree_figure
    from ..runs import with_names

    check_choice(method, "--method", METHODS)
    dataset = data_module.load(data, data_dir=data_dir, test_fraction=0.0, allow_nan=True,
                               columns=columns, drop_columns=drop_columns)
    X = dataset.train
    n, d = X.shape
    complete = ~np.isnan(X).any(axis=1)
    typer.echo(f"{data}: {n} rows, {d} columns" + (
        f" ({int(np.isnan(X).sum())} missing values in {int(n - complete.sum())} rows)"
        if not complete.all() else ""))
    if method != "heldout" and not complete.all():  # heldout alone scores missing values
        typer.echo(f"{method} needs complete rows: on the {int(complete.sum())} rows without "
                   "missing values (--method heldout uses every observed value)")
        X = X[complete]
    result = suggest_n_factors(with_names(X, dataset.feature_names), method,
                               max_factors=max_factors, n_iter=n_iter, random_state=seed,
                               n_folds=folds)
    typer.echo(result.to_text())
    parallel = result if method == "parallel" else _parallel_on_complete_rows(
        X, n_iter, seed, max_factors)
    out.mkdir(parents=True, exist_ok=True)
    if parallel is not None:
        parallel_scree_figure(parallel, out / SCREE_FILE)
    atomic_write_json(out / RESULT_FILE, {
        "data": data, "columns": dataset.feature_names, "method": method,
        "n_factors": result.n_factors, "criterion": result.criterion,
        "notes": list(result.notes),
        "table": {k: np.asarray(v).tolist() for k, v in result.table.items()},
        "parallel_n_factors": None if parallel is None else parallel.n_factors})
    if parallel is not None:
        where = "" if method == "parallel" else \
            f" (parallel analysis suggests {parallel.n_factors})"
        typer.echo(f"scree: {out / SCREE_FILE}{where}")


def _parallel_on_complete_rows(X, n_iter: int, seed: int, max_factors):
    """Parallel analysis of the rows without missing values, for the scree beside a
    bic or heldout suggestion; None when fewer than 3 rows are complete."""
    import numpy as np

    from ..linear.n_factors import suggest_n_factors

    complete = X[~np.isnan(X).any(axis=1)]
    if complete.shape[0] < 3:
        return None
    return suggest_n_factors(complete, "parallel", n_iter=n_iter, random_state=seed,
                             max_factors=max_factors)
