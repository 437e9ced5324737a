"""``elbokit compare``: the lecture's storyline, PCA -> FA -> non-linear FA (VAE), in
one table on the same held-out data.

A model that fails (an elbokit error such as a diverged VAE's TrainingError, or a
numerical failure) is a row of its own with its one-line reason; the other rows are
printed and saved in ``compare.json`` all the same, and the exit code is 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import kinds as model_kinds
from .._text import one_line
from ..kinds import kind_names
from ..persistence import MODEL_FILE
from ._app import app
from .common import (DEFAULT_TEST_FRACTION, LATENT_DIM, Columns, DataDir, DataSpec, DropColumns,
                     Labels, Layer, Networks, Seed, Standardize, TestFraction, Threads,
                     apply_threads, config_field_option, format_table, import_networks)

ValidationFraction = config_field_option("validation_fraction")
CompareLatent = Annotated[Optional[int], typer.Option(
    "--latent", help=f"Latent dimension L of every model (default: {LATENT_DIM}, or d - 1 for a "
                     f"table of at most {LATENT_DIM} features, the most PPCA takes).")]

COMPARE_MODELS = kind_names()  # every registered kind and preset (elbokit.kinds)
DEFAULT_MODELS = "pca,ppca,fa,vae-linear,vae"
FAILED = "failed"
NO_DENSITY = "no density"  # the method cell of a model without log p(x) (the Autoencoder)
INDEPENDENT = "independent"  # the baseline row: a Gaussian per feature, no dependence


def build_model(kind: str, latent: int, *, epochs: int, seed: int, standardize: bool = False,
                validation_fraction: float | None = None):
    """An unfitted model for ``elbokit compare``, as :mod:`elbokit.kinds` declares it.
    VAEs use the Gaussian likelihood with learned variance, so every row is a density of
    the same data in nats; with it they standardize each feature (``standardize="auto"``),
    so their variance floor, ``min_variance=1e-3``, is 1e-3 x each feature's variance and
    any table's units fit. ``standardize``: the classical models too (their densities
    still of the data as given); ``validation_fraction``: the VAEs' held-out share of the
    training rows (None: theirs, "auto")."""
    chosen = {"standardize": standardize or None, "validation_fraction": validation_fraction}
    return model_kinds.build_model(kind, latent, seed=seed, epochs=epochs,
                                   **{k: v for k, v in chosen.items() if v is not None})


@app.command("compare")
def compare(data: DataSpec = "digits", latent: CompareLatent = None,
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
            data_dir: DataDir = None, seed: Seed = 0,
            test_fraction: TestFraction = DEFAULT_TEST_FRACTION,
            columns: Columns = None, drop_columns: DropColumns = None,
            networks: Networks = None, standardize: Standardize = False,
            validation_fraction: ValidationFraction = None, threads: Threads = None,
            layer: Layer = None, labels: Labels = None):
    """Fit (or load) each model and print log p(x), ELBO, active units, reconstruction
    error, linear-probe accuracy and fit time.

    A model that fails is printed as a row with its reason; the others are printed and
    saved; the exit code is then 2. ``--networks``: the classes of the custom networks of
    saved runs it reuses (a kind registered with its own encoder/decoder).
    ``--standardize``: every model fits the standardized features (the VAEs do by
    default); ``--validation-fraction``: the VAEs' validation split (default: 0.1 of a
    small table's training rows, with early stopping; see
    :func:`elbokit.nn.config.auto_validation`)."""
    from .. import data as data_module
    from ..evaluate import check_importance
    from ..exceptions import ParameterError
    from ..persistence import atomic_write_json
    from ..runs import RunLock

    kinds = [m.strip() for m in models.split(",") if m.strip()]
    known = kind_names()  # read now: a kind registered after import counts too
    unknown = [m for m in kinds if m not in known]
    if unknown or not kinds:
        raise ParameterError(f"unknown model(s) {unknown}; choose from {list(known)}")
    if k < 1 or epochs < 1 or (latent is not None and latent < 1):
        raise ParameterError("--k, --epochs and --latent must be >= 1")
    check_importance(k, "--k")  # before any model is fitted
    if test_fraction == 0:
        raise ParameterError("compare ranks the models on held-out rows: --test-fraction "
                             "must be above 0 (fit on every row with `elbokit fit ... "
                             "--test-fraction 0`)")
    # missing cells are kept as NaN: the models that accept them (FA, VBPCA) fit,
    # the others are failed rows with their reason, as any failing model
    dataset = data_module.load(data, data_dir=data_dir, seed=seed, test_fraction=test_fraction,
                               allow_nan=True, columns=columns, drop_columns=drop_columns,
                               layer=layer, labels=labels)
    apply_threads(threads, dataset)
    if latent is None:  # the default, within what every default model takes
        latent = max(1, min(LATENT_DIM, dataset.n_features - 1))
    settings = {"standardize": standardize, "validation_fraction": validation_fraction}
    # one writer of --out at a time: its runs and compare.json, under one lock
    with RunLock(out):
        # every run directory is checked before anything is fitted or written
        plans = {kind: _plan(kind, out / kind, latent=latent, epochs=epochs, seed=seed,
                             data=data, test_fraction=test_fraction, data_dir=data_dir,
                             refit=refit, overwrite=overwrite, columns=dataset.columns,
                             settings=settings, load_options=dataset.load_options)
                 for kind in kinds}
        classes = import_networks(networks)
        rows, table, failures = [], {INDEPENDENT: _independent(dataset)}, {}
        rows.append([INDEPENDENT, table[INDEPENDENT]["test_loglike"],
                     table[INDEPENDENT]["stderr"], "exact", table[INDEPENDENT]["test_loglike"],
                     None, None, None, None])
        for kind in kinds:
            try:
                result = _compare_one(plans[kind], dataset, out / kind, data=data, seed=seed,
                                      k=k, test_fraction=test_fraction, data_dir=data_dir,
                                      networks=classes)
            except COMPARE_FAILURES as exc:
                failures[kind] = _reason(exc)
                rows.append([kind, None, None, FAILED, None, None, None, None, None])
                table[kind] = {"failed": True, "error": failures[kind]}
                continue
            rows.append([kind, result["test_loglike"], result["stderr"], result["method"],
                         result["test_elbo"], result["active_units"],
                         result["reconstruction_error"], result["probe_accuracy"],
                         result["fit_seconds"]])
            table[kind] = result
        atomic_write_json(out / "compare.json", {"data": data, "latent": latent, "models": table})
    typer.echo(f"{data}: {dataset.train.shape[0]} train / {dataset.test.shape[0]} test, "
               f"d = {dataset.n_features}, L = {latent}")
    typer.echo(format_table(["model", "test log p(x)", "+-", "method", "test ELBO",
                             "active", "recon err", "probe acc", "fit s"], rows))
    for kind, reason in failures.items():
        typer.echo(f"{kind}: {FAILED}: {reason}")
    typer.echo("nats/sample of the continuous density of the data as loaded; for the "
               "linear models the exact posterior makes the ELBO equal log p(x). "
               "independent: a Gaussian per feature (the training rows' mean and variance), "
               "the baseline a model of the features' dependence must beat. recon err: "
               "test squared error per sample; probe acc: test accuracy of a logistic "
               "regression on the codes (all training labels); an autoencoder has no "
               "density.")
    if failures:
        typer.echo(f"elbokit: error: {len(failures)} of {len(kinds)} models failed "
                   f"({', '.join(failures)}); the other rows are saved in "
                   f"{out / 'compare.json'}", err=True)
        raise typer.Exit(code=2)


def _numerical_failures() -> tuple[type[BaseException], ...]:
    import numpy as np

    from ..exceptions import ElbokitError

    return (ElbokitError, ArithmeticError, np.linalg.LinAlgError)


COMPARE_FAILURES = _numerical_failures()


class _NonFinite(ArithmeticError):
    """A model's numbers came out NaN or inf."""


def _reason(exc: BaseException) -> str:
    """The one-line reason of a failed row: the error's type and first line, its
    control characters escaped (a feature or class name from a file may hold any)."""
    text = one_line(str(exc).strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _plan(kind: str, run_dir: Path, *, latent: int, epochs: int, seed: int, data: str,
          test_fraction: float, data_dir, refit: bool, overwrite: bool, columns=None,
          settings=None, load_options=None):
    """``(model, reuse)``: the unfitted model of ``kind`` and whether the saved run in
    ``run_dir`` matches it (its key: data content, split, every setting). A saved run
    fitted otherwise is replaced only with ``refit`` or ``overwrite``."""
    from ..exceptions import ParameterError
    from ..models import kind_of
    from ..runs import matching_run, run_key

    model = build_model(kind, latent, epochs=epochs, seed=seed, **(settings or {}))
    extra = {} if columns is None else {"columns": columns}  # as fit_and_record keys it
    if load_options is not None:  # an .h5ad's layer and labels
        extra["load_options"] = load_options
    key = run_key(kind_of(model), model.get_params(), spec=data, seed=seed,
                  test_fraction=test_fraction, data_dir=data_dir, **extra)
    if not refit and matching_run(run_dir, key):
        return model, True
    if (run_dir / MODEL_FILE).exists() and not (refit or overwrite):
        raise ParameterError(f"{run_dir} holds a run fitted with other settings or data; "
                             "pass --refit or --overwrite to replace it, or choose another "
                             "--out")
    return model, False


def _compare_one(plan, dataset, run_dir: Path, *, data: str, seed: int, k: int,
                 test_fraction: float, data_dir, networks: dict | None = None) -> dict:
    """Fit (or load) one model and measure it on the test rows; raises on failure
    (an elbokit error, a numerical error, or NaN/inf numbers). ``networks``: the
    classes of a reused run's custom networks (``--networks``)."""
    import math

    from ..evaluate import active_units, elbo, log_likelihood
    from ..models import load_model
    from ..runs import fit_and_record, read_metrics

    model, reuse = plan
    if reuse:
        model = load_model(run_dir, networks=networks)
        fit_seconds = read_metrics(run_dir).get("fit_seconds")
    else:
        metrics = fit_and_record(model, dataset, run_dir, spec=data, seed=seed,
                                 overwrite=True, test_fraction=test_fraction,
                                 data_dir=data_dir)
        fit_seconds = metrics["fit_seconds"]
    # a diverged fit (a VAE's) is a failure, not a row
    model.check_fit(dataset.test, "test", reference=dataset.train)
    features = _feature_columns(model, dataset)
    if not model.has_density:  # the Autoencoder: no log p(x), no ELBO
        n_active, _ = active_units(model, dataset.test)
        return {"test_loglike": None, "stderr": None, "method": NO_DENSITY, "test_elbo": None,
                "active_units": n_active, "fit_seconds": fit_seconds, **features}
    ll = log_likelihood(model, dataset.test, n_importance=k, progress=True)
    bound = float(elbo(model, dataset.test).mean())
    if not (math.isfinite(ll.mean) and math.isfinite(bound)):
        raise _NonFinite(f"test log p(x) = {ll.mean}, test ELBO = {bound} (not finite)")
    n_active, _ = active_units(model, dataset.test)
    return {"test_loglike": ll.mean, "stderr": ll.stderr,
            "method": "exact" if ll.exact else f"IS k={k}", "test_elbo": bound,
            "active_units": n_active, "fit_seconds": fit_seconds, **features}


def _independent(dataset) -> dict:
    """The baseline row: the test log p(x) of independent Gaussians per feature
    (:func:`elbokit.linear._gaussian.independent_log_likelihood`), mean and standard
    error over the test rows."""
    import numpy as np

    from ..linear._gaussian import independent_log_likelihood

    ll = independent_log_likelihood(dataset.train, dataset.test)
    stderr = float(ll.std(ddof=1) / np.sqrt(ll.size)) if ll.size > 1 else None
    return {"test_loglike": float(ll.mean()), "stderr": stderr, "method": "exact",
            "test_elbo": float(ll.mean())}


def _feature_columns(model, dataset) -> dict:
    """The test reconstruction error (mean squared error per sample, the data's units)
    and the linear-probe accuracy (logistic regression on the codes of all the labelled
    training rows, scored on the test codes); None where they do not apply (rows with
    missing cells, data without labels)."""
    import numpy as np

    from ..evaluate import linear_probe, reconstruction_error
    from ..exceptions import DataError

    complete = not (np.isnan(dataset.train).any() or np.isnan(dataset.test).any())
    error = reconstruction_error(model, dataset.test) if complete else None
    probe = None
    if complete and dataset.train_labels is not None and dataset.test_labels is not None:
        try:
            probe = linear_probe(model, dataset.train, dataset.train_labels, dataset.test,
                                 dataset.test_labels, n_labels=(None,),
                                 classifiers=("logistic",))["logistic"]["all"]
        except DataError:  # one class only
            probe = None
    return {"reconstruction_error": error, "probe_accuracy": probe}
