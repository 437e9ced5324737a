"""``elbokit fit {pca,ppca,fa,linear-ae}``: the classical models, each a thin layer over
:func:`elbokit.runs.make_classical` and :func:`elbokit.runs.fit_and_record`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import fit_app
from .common import (LATENT_DIM, DataSpec, Latent, Normalize, Out, Standardize, load_dataset,
                     print_saved, record_fit, shared_fit_options, with_options)


def _fit(kind: str, options: dict, settings: dict) -> None:
    """Fit the classical model ``kind`` with its ``settings`` and record the run."""
    from ..runs import make_classical, prepare_out_dir

    prepare_out_dir(options["out"], overwrite=options["overwrite"])
    # NaN cells are missing values for the models that accept them
    allow_nan = kind == "fa" or (kind == "ppca" and settings.get("solver") == "em")
    dataset = load_dataset(options, allow_nan=allow_nan)
    latent = options["latent"]
    model = make_classical(kind, latent, seed=options["seed"], verbose=True, **settings)
    metrics = record_fit(model, dataset, options)
    print_saved(f"{kind} (L={latent}) on {options['data']}", metrics, options["out"])


def _model(data: DataSpec = "digits", latent: Latent = LATENT_DIM, out: Out = Path("runs"),
           standardize: Standardize = False):
    """The options of every classical model (a group for ``with_options``)."""


def _ppca(solver: Annotated[str, typer.Option(help="closed or em (em accepts NaN)")] = "closed"):
    """PPCA's own options."""


def _fa(max_iter: Annotated[int, typer.Option(help="Maximum EM iterations.")] = 5000,
        rotation: Annotated[str, typer.Option(
            help="none, or a rotation of the factors: varimax, quartimax (orthogonal), "
                 "promax, oblimin, quartimin, geomin (oblique).")] = "none",
        normalize: Normalize = True):
    """Factor analysis' own options."""


@fit_app.command("pca")
@with_options(_model, shared_fit_options, out=Path("runs/pca"))
def fit_pca(**options):
    """PCA by SVD; score is the PPCA log-likelihood with the ML noise variance."""
    _fit("pca", options, {"standardize": options["standardize"]})


@fit_app.command("ppca")
@with_options(_model, _ppca, shared_fit_options, out=Path("runs/ppca"))
def fit_ppca(**options):
    """Probabilistic PCA (closed form or EM with missing values)."""
    _fit("ppca", options, {"solver": options["solver"], "standardize": options["standardize"]})


@fit_app.command("fa")
@with_options(_model, _fa, shared_fit_options, out=Path("runs/fa"))
def fit_fa(**options):
    """Factor analysis by EM (the lecture's E and M steps); NaN cells are missing values."""
    _fit("fa", options, {"max_iter": options["max_iter"], "standardize": options["standardize"],
                         **_rotation_options(options["rotation"], options["normalize"])})


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
@with_options(_model, shared_fit_options, out=Path("runs/linear-ae"))
def fit_linear_ae(**options):
    """Tied linear autoencoder x_hat = W'W x trained by gradient descent."""
    _fit("linear-ae", options, {"standardize": options["standardize"]})
