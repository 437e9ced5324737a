"""``elbokit fit vbpca``: variational Bayesian PCA, which chooses its own dimension."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (DataSpec, Out, Standardize, load_dataset, print_metrics, record_fit,
                     shared_fit_options, with_options)

PLOT_FILE = "alpha.png"

DEFAULT_MAX_LATENT = 40
MaxLatent = Annotated[Optional[int], typer.Option(
    "--max-latent", help="Largest latent dimension to start from; ARD switches off the "
                         "ones the data does not need. Default: 40, or the number of "
                         "features when there are fewer.")]
MaxIter = Annotated[int, typer.Option("--max-iter", help="Maximum coordinate-ascent sweeps.")]


def _model(data: DataSpec = "digits", max_latent: MaxLatent = None,
           out: Out = Path("runs/vbpca"), max_iter: MaxIter = 1000,
           standardize: Standardize = False):
    """VBPCA's options (a group for ``with_options``)."""


@with_options(_model, shared_fit_options)
def fit_vbpca(**options):
    """Variational Bayesian PCA with ARD (mean-field VI): prints the chosen dimension."""
    from ..exceptions import ParameterError
    from ..persistence import atomic_write_json
    from ..runs import METRICS_FILE, prepare_out_dir
    from ..vi import VBPCA
    from ..vi.plots import plot_relevance

    data, out, max_latent = options["data"], Path(options["out"]), options["max_latent"]
    if max_latent is not None and max_latent < 1:
        raise ParameterError(f"--max-latent must be >= 1; got {max_latent}")
    prepare_out_dir(out, overwrite=options["overwrite"])
    # VBPCA treats NaN entries of user files as missing values
    dataset = load_dataset(options, allow_nan=True)
    if max_latent is None:
        max_latent = min(DEFAULT_MAX_LATENT, dataset.n_features)
    if max_latent > dataset.n_features:
        raise ParameterError(f"--max-latent {max_latent} exceeds the {dataset.n_features} "
                             f"features of {data}")
    model = VBPCA(max_latent, max_iter=options["max_iter"], random_state=options["seed"],
                  standardize=options["standardize"])
    metrics = record_fit(model, dataset, options)
    metrics.update(chosen_dimension=model.n_components_, max_latent=max_latent,
                   final_elbo=float(model.elbo_[-1]), noise_variance=model.noise_variance_)
    atomic_write_json(out / METRICS_FILE, metrics)
    plot_relevance(model, out / PLOT_FILE,
                   title=f"VBPCA on {data}: {model.n_components_} of {max_latent} active")
    print_metrics(f"vbpca (max L={max_latent}) on {data}", metrics)
    typer.echo(f"chosen dimension: {model.n_components_} of {max_latent}")
    if model.n_components_ == max_latent:
        typer.echo("every component stayed active: the data may support more; try a larger "
                   "--max-latent")
    typer.echo(f"saved to {out} (E[alpha] plot: {out / PLOT_FILE})")


def register(fit_app: typer.Typer) -> None:
    """Add ``vbpca`` to the ``elbokit fit`` group."""
    fit_app.command("vbpca")(fit_vbpca)
