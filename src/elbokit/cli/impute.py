"""``elbokit impute RUN --data FILE --out FILE``: a table with its missing values filled
by a saved model (a VAE, factor analysis, PPCA solver='em', VBPCA)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import app
from .common import Columns, DropColumns, Networks, Seed, load_run_model


@app.command("impute")
def impute(run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
           data: Annotated[str, typer.Option(
               "--data", help="The table to fill: a .csv (empty cells, NA, NaN are "
                              "missing), .npy or .npz path.")],
           out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
           draws: Annotated[Optional[int], typer.Option(
               "--draws", help="Write this many draws from p(x_missing | x_observed) "
                               "(multiple imputation; a VAE only), stacked, with a first "
                               "column 'draw', instead of the conditional means.")] = None,
           n_samples: Annotated[int, typer.Option(
               "--n-samples", help="A VAE's importance samples per row.")] = 1000,
           overwrite: Annotated[bool, typer.Option(
               "--overwrite", help="Replace an existing --out.")] = False,
           seed: Seed = 0, columns: Columns = None, drop_columns: DropColumns = None,
           networks: Networks = None):
    """Fill the missing values of a table with a saved model's conditional means
    E[x_missing | x_observed] (a VAE's by importance sampling), or write --draws from
    p(x_missing | x_observed); the observed values are written as read. The columns
    are those the run was fitted on (run.json's, unless --columns/--drop-columns say
    otherwise); the CSV is written whole or not at all."""
    import numpy as np

    from .. import data as data_module
    from ..exceptions import DataError, ParameterError
    from ..persistence import atomic_write_with
    from ..runs import RUN_FILE, read_run, recorded_columns

    if out.exists() and not overwrite:
        raise ParameterError(f"{out} exists; pass --overwrite to replace it, or choose "
                             "another --out")
    if out.is_dir():
        raise ParameterError(f"--out {out} is a directory; give a CSV file")
    model = load_run_model(run_dir, networks)
    if not getattr(model, "accepts_missing", False) or not hasattr(model, "impute"):
        raise ParameterError(f"the {model.kind} model in {run_dir} does not impute missing "
                             "values; fit a VAE, fa, ppca --solver em or vbpca")
    if draws is not None and model.kind != "vae":
        raise ParameterError(f"--draws is for a VAE; the model in {run_dir} is {model.kind}")
    run = read_run(run_dir) if (run_dir / RUN_FILE).is_file() else {}
    if columns is None and drop_columns is None and Path(data).suffix.lower() == ".csv":
        columns = recorded_columns(run, run_dir)
    dataset = data_module.load(data, test_fraction=0.0, allow_nan=True, columns=columns,
                               drop_columns=drop_columns)
    X = dataset.train
    if X.shape[1] != model.n_features_in_:
        raise DataError(f"{data} has {X.shape[1]} columns but the model in {run_dir} was "
                        f"fitted on {model.n_features_in_}")
    options = {} if model.kind != "vae" else {"n_draws": draws, "n_samples": n_samples,
                                              "random_state": seed}
    filled = model.impute(X, **options)
    names = dataset.feature_names or [f"x{j}" for j in range(X.shape[1])]
    atomic_write_with(out, lambda tmp: _write_csv(tmp, filled, names))
    missing = int(np.isnan(X).sum())
    typer.echo(f"wrote {out}: {X.shape[0]} rows, {missing} missing values "
               + ("filled" if draws is None else f"drawn {draws} times"))


def _write_csv(path: str, values, names: list[str]) -> None:
    """The rows of ``values`` ((n, d), or (m, n, d) draws, then a first column "draw")
    under a header of ``names``, each number in its shortest exact form."""
    import csv

    import numpy as np

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if values.ndim == 2:
            writer.writerow(names)
            writer.writerows(map(_row, np.asarray(values, dtype=np.float64)))
            return
        writer.writerow(["draw", *names])
        for k, table in enumerate(np.asarray(values, dtype=np.float64)):
            writer.writerows([str(k), *_row(row)] for row in table)


def _row(row) -> list[str]:
    return [repr(float(v)) for v in row]
