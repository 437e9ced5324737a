"""``elbokit evaluate DIR --data SPEC`` and ``elbokit sample DIR -n N --out PNG``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import app
from .common import (DEFAULT_TEST_FRACTION, Columns, Crop, DataDir, DataSpec, DropColumns,
                     Labels, Layer, Networks, Normalize, Resize, Seed, Threads, apply_threads,
                     image_size, import_networks, load_run_model, print_metrics)


@app.command("evaluate")
def evaluate(run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
             data: DataSpec = "digits", data_dir: DataDir = None, seed: Seed = 0,
             test_fraction: Annotated[float, typer.Option(
                 "--test-fraction", help="Built-in data sets only: their held-out share "
                                         "(a file is scored whole).")] = DEFAULT_TEST_FRACTION,
             columns: Columns = None, drop_columns: DropColumns = None,
             networks: Networks = None, threads: Threads = None,
             layer: Layer = None, labels: Labels = None):
    """Print a saved model's log-likelihood (ELBO for a VAE) on other data.

    A file (.csv, .npy, .npz, a folder of images) is scored whole, every row, with the
    columns the run was fitted on (run.json's, unless --columns/--drop-columns say
    otherwise); missing values are allowed for the models that accept them. A built-in
    data set is scored on its train and test rows, split as --seed and --test-fraction
    say (by default as the fit split it). Images of another shape than the model was
    fitted on are refused; data other than the fit's (by digest) are named in a line
    after the metrics, as is the fit's own data."""
    from .. import data as data_module
    from .._provenance import check_image_shape
    from ..exceptions import DataError, ModelFileError
    from ..runs import RUN_FILE, metrics_for, read_run, recorded_columns

    model = load_run_model(run_dir, networks)
    run = read_run(run_dir) if (run_dir / RUN_FILE).is_file() else {}
    whole = data not in data_module.SPECS  # a user's file: every row, no split
    named = Path(data).suffix.lower() not in (".npy", ".npz")  # arrays have no column names
    if columns is None and drop_columns is None and named:
        columns = recorded_columns(run, run_dir)
    if Path(data).suffix.lower() == ".h5ad":  # the run's layer and labels, unless given
        recorded = run.get("load_options") or {}
        layer = recorded.get("layer") if layer is None else layer
        labels = recorded.get("labels") if labels is None else labels
    dataset = data_module.load(data, data_dir=data_dir, seed=seed,
                               test_fraction=0.0 if whole else test_fraction,
                               allow_nan=model.accepts_missing, columns=columns,
                               drop_columns=drop_columns, layer=layer, labels=labels)
    apply_threads(threads, dataset)
    if dataset.n_features != model.n_features_in_:
        raise DataError(f"{data} has {dataset.n_features} features but the model in {run_dir} "
                        f"was fitted on {model.n_features_in_}")
    check_image_shape(run, run_dir, model, dataset, data)
    metrics = metrics_for(model, dataset)
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ModelFileError(f"the model in {run_dir} gives non-finite {', '.join(bad)} on "
                             f"{data}: its arrays are corrupted or do not suit this data")
    if whole:
        metrics = every_row_metrics(metrics, dataset.train)
    print_metrics(f"{run_dir} on {data}" + (f" (every row: {dataset.train.shape[0]})"
                                            if whole else ""), metrics)
    note = data_note(run, data, data_dir)
    if note:
        typer.echo(note)


def data_note(run: dict, data: str, data_dir) -> str | None:
    """The line saying whether ``data`` are those the run was fitted on (by the digest
    its run.json records; None where it records none)."""
    from .._provenance import data_difference, recorded_fingerprint, short_fingerprint

    fingerprint = recorded_fingerprint(run)
    if fingerprint is None:
        return None
    difference = data_difference(run, data, data_dir)
    if difference is None:
        return f"data: the data the run was fitted on ({short_fingerprint(fingerprint)})"
    return f"data: {difference}"


def every_row_metrics(metrics: dict, X) -> dict:
    """The metrics of a file scored whole: the "train_" figures (every row went there)
    without the prefix, the number of rows and the share of missing entries."""
    import numpy as np

    result = {k.removeprefix("train_"): v for k, v in metrics.items() if k != "test_note"}
    result["n_rows"] = int(X.shape[0])
    missing = float(np.isnan(X).mean()) if X.size else 0.0
    if missing:
        result["missing_share"] = missing
    return result


MAX_GRID = 100_000  # images in one grid (316 x 316 tiles)


@app.command("sample")
def sample(run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
           n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 64,
           out: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path(
               "samples.png"),
           seed: Seed = 0,
           sampler: Annotated[str, typer.Option(
               "--sampler", help="prior (z ~ p(z)) or gmm (a VAE's Gaussian mixture over its "
                                 "training codes).")] = "prior",
           label: Annotated[str | None, typer.Option(
               "--label", help="A VAE conditioned on labels: every sample of this class "
                               "(default: one row per class, -n split among them, the same "
                               "z in each column); its index or its name.")] = None,
           networks: Networks = None, threads: Threads = None):
    """Draw samples from a saved model and save them as an image grid."""
    apply_threads(threads, None)
    from .._text import plain_text
    from ..exceptions import DataError, ParameterError
    from ..plots import image_grid
    from ..runs import image_shape_of

    if n < 1:
        raise ParameterError(f"-n must be >= 1; got {n}")
    model = load_run_model(run_dir, networks)
    from ..persistence import check_memory

    # the samples in float64 and their latents, the grid image and the figure: ~4 copies,
    # and as much again for the plotting library's own (the refusal as before this rule)
    check_memory(8 * 8 * n * (model.n_features_in_ + 64), f"sample -n {n}",
                 error=ParameterError)
    if n > MAX_GRID:
        raise ParameterError(f"-n {n} samples make an unreadable grid; draw at most {MAX_GRID}")
    shape = image_shape_of(run_dir, model.n_features_in_)
    if shape is None:
        raise DataError(f"the model in {run_dir} was not fitted on images "
                        f"({model.n_features_in_} features); cannot draw a grid")
    if sampler not in model.samplers:
        raise ParameterError(f"--sampler {sampler!r}: the {model.kind} model in {run_dir} "
                             f"draws with {' or '.join(map(repr, model.samplers))}")
    options = {} if sampler == "prior" else {"sampler": sampler}
    conditional = model.conditional
    names = _target_names(run_dir)
    y = _label_of(model, label, run_dir, conditional, names)
    with plain_text():  # run.json's class names drawn as written (no mathtext)
        if conditional and y is None:  # a grid of rows, one per class
            from ..plots import MAX_CLASSES_SHOWN, class_samples_figure

            rows = min(len(model.classes_), MAX_CLASSES_SHOWN)
            class_samples_figure(model, shape, out, per_class=max(1, n // rows),
                                 random_state=seed, label_names=names, **options)
        else:
            if y is not None:
                options["y"] = y
            images = model.sample(n, random_state=seed, **options)
            title = f"{n} samples from {run_dir}" + (
                "" if y is None else f", label {_class_name(y, names)}")
            image_grid(images, shape, out, title=title)
    typer.echo(f"wrote {out}")


def _target_names(run_dir: Path) -> list[str] | None:
    """The class names run.json records (the data's target names), or None."""
    from ..runs import RUN_FILE, read_run

    return read_run(run_dir).get("target_names") if (run_dir / RUN_FILE).is_file() else None


def _class_name(value, names: list[str] | None) -> str:
    """A class label with its name: "3", or "3 (Dress)" where run.json names it."""
    if names is not None and isinstance(value, int) and 0 <= value < len(names) \
            and names[value] != str(value):
        return f"{value} ({names[value]})"
    return str(value)


def _label_of(model, label: str | None, run_dir: Path, conditional: bool,
              names: list[str] | None = None):
    """The class a conditional VAE samples for ``--label`` (None: no label given): the
    label itself ("3") or its name in run.json's target names ("Dress"), after checking
    that the model is one conditioned on labels and knows that class."""
    from ..exceptions import ParameterError

    if conditional and model.classes_ is None:
        raise ParameterError(f"the VAE in {run_dir} is conditioned on covariates, not labels: "
                             "sample it from Python, VAE.load(run).sample(n, y=covariates)")
    if label is None:
        return None
    if not conditional:
        raise ParameterError(f"--label is for a VAE conditioned on labels; the model in "
                             f"{run_dir} is not")
    classes = model.classes_.tolist()
    by_value = [c for c in classes if str(c) == label]
    # target_names[c] names the integer label c (scikit-learn's convention)
    by_name = [c for c in classes if isinstance(c, int) and names is not None
               and 0 <= c < len(names) and names[c] == label]
    if by_value and by_name and by_value != by_name:
        raise ParameterError(f"--label {label!r} is both the class {by_value[0]} and the name "
                             f"of class {_class_name(by_name[0], names)} in {run_dir}; give "
                             "the other class's name or index")
    match = by_value or by_name
    if not match:
        known = ", ".join(_class_name(c, names) for c in classes[:20])
        raise ParameterError(f"--label {label!r} is not one of the classes of the model in "
                             f"{run_dir} ({known})")
    return match[0]


@app.command("report")
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory or a directory "
                                                        "of runs.")],
           rotation: Annotated[str, typer.Option(
               help="Factor solution of linear models on tables: fitted (the model's own "
                    "rotation), none, varimax, quartimax, promax, oblimin, quartimin or "
                    "geomin.")] = "fitted",
           normalize: Normalize = True,
           cut: Annotated[float, typer.Option(
               "--cut", help="Loadings below this (absolute value) are left blank in the "
                             "loadings table, as psych's print(fa, cut=0.3).")] = 0.3,
           data: Annotated[Optional[str], typer.Option(
               "--data", help="The data of the figures, a spec as fit's --data; needed for a "
                              "run fitted on a file or folder (the report opens no path a "
                              "run.json names) and for a run saved from Python; checked "
                              "against the digest the run recorded.")] = None,
           resize: Resize = None, crop: Crop = None, networks: Networks = None,
           threads: Threads = None, layer: Layer = None, labels: Labels = None):
    """Write a self-contained report.html (metrics, settings, all figures).

    A run whose report would hold no figure is an error (exit code 2), with the fix:
    --data for a run that names no data, --networks for a run with custom networks.
    A run fitted on a file or folder is drawn on --data only (its run.json's path is
    never opened); data other than the fit's (by digest) are named on the page and in
    one line, images of another shape than the model's are refused."""
    from ..exceptions import ParameterError
    from ..report import write_report

    apply_threads(threads, None)
    options = {"resize": image_size(resize), "crop": crop} if resize or crop else None
    if layer is not None or labels is not None:  # an .h5ad's (else the run's own)
        options = {**(options or {}), "layer": layer, "labels": labels}
    if options is not None and data is None:
        raise ParameterError("--resize, --crop, --layer and --labels read the data of --data "
                             "(without them the run's own settings apply); give --data with "
                             "them")
    page = write_report(run_dir, rotation=rotation, normalize=normalize, cut=cut, data=data,
                        load_options=options, networks=import_networks(networks))
    typer.echo(f"wrote {page}")
