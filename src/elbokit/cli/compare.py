"""``elbokit compare``: the lecture's storyline, PCA -> FA -> non-linear FA (VAE), in
one table on the same held-out data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from .common import DataDir, DataSpec, Latent, Seed, TestFraction, format_table

COMPARE_MODELS = ("pca", "ppca", "fa", "vbpca", "linear-ae", "vae-linear", "vae")
DEFAULT_MODELS = "pca,ppca,fa,vae-linear,vae"


def build_model(kind: str, latent: int, *, epochs: int, seed: int, mean_variance: float = 1.0):
    """An unfitted model for ``elbokit compare`` (VAEs use the Gaussian likelihood
    with learned variance so every row is a density of the same data, in nats; their
    variance floor is FactorAnalysis's, 1e-3 x the mean feature variance)."""
    from ..runs import CLASSICAL_KINDS, make_classical

    if kind in CLASSICAL_KINDS:
        return make_classical(kind, latent, seed=seed)
    if kind == "vbpca":
        from ..vi import VBPCA

        return VBPCA(latent, random_state=seed)
    from ..nn import VAE

    if kind == "vae-linear":
        # settings under which the linear VAE reaches FA's likelihood (tests/test_vae.py)
        return VAE(latent, decoder="linear", likelihood="gaussian", epochs=epochs, seed=seed,
                   min_variance=1e-3 * mean_variance, batch_size=64, lr=2e-2,
                   lr_schedule="cosine", progress=False)
    if kind == "vae":
        return VAE(latent, likelihood="gaussian", hidden=(256,), epochs=epochs, seed=seed,
                   min_variance=1e-3 * mean_variance, progress=False)
    from ..exceptions import ParameterError

    raise ParameterError(f"unknown model {kind!r}; choose from {list(COMPARE_MODELS)}")


@app.command("compare")
def compare(data: DataSpec = "digits", latent: Latent = 10,
            models: Annotated[str, typer.Option(help="Comma-separated: " + ",".join(
                COMPARE_MODELS))] = DEFAULT_MODELS,
            k: Annotated[int, typer.Option("--k", help="Importance samples for VAE "
                                                      "log p(x).")] = 1000,
            epochs: Annotated[int, typer.Option(help="VAE training epochs.")] = 40,
            out: Annotated[Path, typer.Option("--out", help="Directory of runs.")] = Path(
                "runs/compare"),
            refit: Annotated[bool, typer.Option(help="Refit even if a matching run "
                                                     "exists.")] = False,
            overwrite: Annotated[bool, typer.Option(help="Replace runs in --out fitted with "
                                                         "other settings.")] = False,
            data_dir: DataDir = None, seed: Seed = 0, test_fraction: TestFraction = 0.2):
    """Fit (or load) each model and print log p(x), ELBO, active units and fit time."""
    from .. import data as data_module
    from ..evaluate import active_units, elbo, log_likelihood
    from ..exceptions import ParameterError
    from ..io import atomic_write_json
    from ..models import load_model
    from ..models import kind_of
    from ..runs import fit_and_record, matching_run, read_metrics, run_key

    kinds = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in kinds if m not in COMPARE_MODELS]
    if unknown or not kinds:
        raise ParameterError(f"unknown model(s) {unknown}; choose from {list(COMPARE_MODELS)}")
    if k < 1 or epochs < 1 or latent < 1:
        raise ParameterError("--k, --epochs and --latent must be >= 1")
    dataset = data_module.load(data, data_dir=data_dir, seed=seed, test_fraction=test_fraction)
    rows, table = [], {}
    for kind in kinds:
        run_dir = out / kind
        model = build_model(kind, latent, epochs=epochs, seed=seed,
                            mean_variance=float(dataset.train.var(axis=0).mean()))
        key = run_key(kind_of(model), model.get_params(), spec=data, seed=seed,
                      test_fraction=test_fraction, data_dir=data_dir)
        if not refit and matching_run(run_dir, key):
            model = load_model(run_dir)
            fit_seconds = read_metrics(run_dir).get("fit_seconds")
        else:
            if (run_dir / "model.json").exists() and not (refit or overwrite):
                raise ParameterError(f"{run_dir} holds a run fitted with other settings or "
                                     "data; pass --refit or --overwrite to replace it, or "
                                     "choose another --out")
            metrics = fit_and_record(model, dataset, run_dir, spec=data, seed=seed,
                                     overwrite=True, test_fraction=test_fraction,
                                     data_dir=data_dir)
            fit_seconds = metrics["fit_seconds"]
        ll = log_likelihood(model, dataset.test, n_importance=k, progress=True)
        bound = float(elbo(model, dataset.test).mean())
        n_active, _ = active_units(model, dataset.test)
        how = "exact" if ll.exact else f"IS k={k}"
        rows.append([kind, ll.mean, ll.stderr, how, bound, n_active, fit_seconds])
        table[kind] = {"test_loglike": ll.mean, "stderr": ll.stderr, "method": how,
                       "test_elbo": bound, "active_units": n_active, "fit_seconds": fit_seconds}
    atomic_write_json(out / "compare.json", {"data": data, "latent": latent, "models": table})
    typer.echo(f"{data}: {dataset.train.shape[0]} train / {dataset.test.shape[0]} test, "
               f"d = {dataset.n_features}, L = {latent}")
    typer.echo(format_table(["model", "test log p(x)", "+-", "method", "test ELBO",
                             "active", "fit s"], rows))
    typer.echo("nats/sample of the continuous density of the data as loaded; for the "
               "linear models the exact posterior makes the ELBO equal log p(x).")
