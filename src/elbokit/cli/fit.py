"""``elbokit fit {pca,ppca,fa,linear-ae}``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import fit_app
from .common import (DEFAULT_TEST_FRACTION, Columns, DataDir, DataSpec, DropColumns, Latent,
                     Overwrite, Seed, TestFraction, print_metrics)


def _fit(kind: str, data: str, latent: int, out: Path, data_dir, seed, test_fraction,
         overwrite, options=None, columns=None, drop_columns=None):
    from .. import data as data_module
    from ..runs import fit_and_record, make_classical, prepare_out_dir

    prepare_out_dir(out, overwrite=overwrite)
    # NaN cells are missing values for the models that accept them
    allow_nan = kind == "fa" or (kind == "ppca" and (options or {}).get("solver") == "em")
    dataset = data_module.load(data, data_dir=data_dir, seed=seed, test_fraction=test_fraction,
                               allow_nan=allow_nan, columns=columns,
                               drop_columns=drop_columns)
    model = make_classical(kind, latent, seed=seed, verbose=True, **(options or {}))
    metrics = fit_and_record(model, dataset, out, spec=data, seed=seed, overwrite=overwrite,
                             test_fraction=test_fraction, data_dir=data_dir)
    print_metrics(f"{kind} (L={latent}) on {data}", metrics)
    typer.echo(f"saved to {out}")


Out = Annotated[Path, typer.Option("--out", help="Run directory to write.")]
Standardize = Annotated[bool, typer.Option(
    "--standardize/--no-standardize",
    help="Fit to the standardized features (each divided by its standard deviation); "
         "log-likelihoods are still reported for the data in its own units.")]


@fit_app.command("pca")
def fit_pca(data: DataSpec = "digits", latent: Latent = 10, out: Out = Path("runs/pca"),
            standardize: Standardize = False,
            data_dir: DataDir = None, seed: Seed = 0,
            test_fraction: TestFraction = DEFAULT_TEST_FRACTION,
            overwrite: Overwrite = False, columns: Columns = None,
            drop_columns: DropColumns = None):
    """PCA by SVD; score is the PPCA log-likelihood with the ML noise variance."""
    _fit("pca", data, latent, out, data_dir, seed, test_fraction, overwrite,
         {"standardize": standardize}, columns, drop_columns)


@fit_app.command("ppca")
def fit_ppca(data: DataSpec = "digits", latent: Latent = 10, out: Out = Path("runs/ppca"),
             solver: Annotated[str, typer.Option(help="closed or em (em accepts NaN)")] = "closed",
             standardize: Standardize = False,
             data_dir: DataDir = None, seed: Seed = 0,
             test_fraction: TestFraction = DEFAULT_TEST_FRACTION,
             overwrite: Overwrite = False, columns: Columns = None,
             drop_columns: DropColumns = None):
    """Probabilistic PCA (closed form or EM with missing values)."""
    _fit("ppca", data, latent, out, data_dir, seed, test_fraction, overwrite,
         {"solver": solver, "standardize": standardize}, columns, drop_columns)


@fit_app.command("fa")
def fit_fa(data: DataSpec = "digits", latent: Latent = 10, out: Out = Path("runs/fa"),
           max_iter: Annotated[int, typer.Option(help="Maximum EM iterations.")] = 5000,
           rotation: Annotated[str, typer.Option(
               help="none, or a rotation of the factors: varimax, quartimax (orthogonal), "
                    "promax, oblimin, quartimin, geomin (oblique).")] = "none",
           normalize: Annotated[bool, typer.Option(
               "--normalize/--no-normalize", help="Kaiser normalization of the rotation "
                                                  "(rows divided by sqrt(h2)).")] = True,
           standardize: Standardize = False,
           data_dir: DataDir = None, seed: Seed = 0,
           test_fraction: TestFraction = DEFAULT_TEST_FRACTION,
           overwrite: Overwrite = False, columns: Columns = None,
           drop_columns: DropColumns = None):
    """Factor analysis by EM (the lecture's E and M steps); NaN cells are missing values."""
    _fit("fa", data, latent, out, data_dir, seed, test_fraction, overwrite,
         {"max_iter": max_iter, **_rotation_options(rotation, normalize),
          "standardize": standardize}, columns, drop_columns)


def _rotation_options(rotation: str, normalize: bool) -> dict:
    """FactorAnalysis' rotation settings from --rotation and --normalize (checked against
    :data:`elbokit.linear.rotations.ROTATIONS`; ``normalize`` passed where the
    estimator takes it)."""
    from .._validation import check_choice
    from ..exceptions import ParameterError
    from ..linear import FactorAnalysis
    from ..linear.rotations import ROTATIONS

    check_choice(rotation, "--rotation", ("none",) + ROTATIONS)
    options = {"rotation": None if rotation == "none" else rotation}
    if "normalize" in FactorAnalysis().get_params():
        options["normalize"] = normalize
    elif not normalize:
        raise ParameterError("--no-normalize: this FactorAnalysis always Kaiser-normalizes")
    return options


@fit_app.command("linear-ae")
def fit_linear_ae(data: DataSpec = "digits", latent: Latent = 10,
                  out: Out = Path("runs/linear-ae"), standardize: Standardize = False,
                  data_dir: DataDir = None, seed: Seed = 0,
                  test_fraction: TestFraction = DEFAULT_TEST_FRACTION,
                  overwrite: Overwrite = False, columns: Columns = None,
                  drop_columns: DropColumns = None):
    """Tied linear autoencoder x_hat = W'W x trained by gradient descent."""
    _fit("linear-ae", data, latent, out, data_dir, seed, test_fraction, overwrite,
         {"standardize": standardize}, columns, drop_columns)
