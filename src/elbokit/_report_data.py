"""The data of a report's runs: the data set a run's figures are drawn on (--data, or
the built-in data set it was fitted on: never a file its run.json names), the checks of
--data against the run's record (digest, image shape), and the metrics of a run that
has no metrics.json."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ._warn import warn
from ._provenance import (_same_data, check_image_shape, data_difference,
                          recorded_fingerprint, short_fingerprint)
from ._text import terminal_text
from .exceptions import ModelFileError
from .persistence import RUN_FILE
from .runs import metrics_for, recorded_columns


def scores(model, dataset, spec: str, parts: list) -> dict:
    """The metrics of a run without metrics.json (saved from Python) on the data given
    to the report, said so in ``parts``; none for a VAE conditioned on covariates (the
    report has no covariates to score it with)."""
    if model.conditional and model.classes_ is None:
        return {}
    parts.append(f"<p>metrics: computed by the report on {html.escape(spec)}, split as "
                 "by default (the run has no metrics.json)</p>")
    return metrics_for(model, dataset)


def check_one_data(path: Path, run_dirs: list[Path], data: str | None) -> None:
    """Refuse a directory of runs fitted on different data (by their recorded digests):
    one ``--data`` cannot be the data of each, so the line says to report each run
    alone. Without ``--data`` runs on different built-in data sets are each drawn on
    their own and pass."""
    from .data import SPECS
    from .exceptions import ParameterError
    from .persistence import read_run

    fitted = []  # (run directory, recorded data, digest) of the runs that record one
    for run_dir in run_dirs:
        run = read_run(run_dir) if (run_dir / RUN_FILE).is_file() else {}
        digest = recorded_fingerprint(run)
        if digest is not None and (data is not None or run.get("data") not in SPECS):
            fitted.append((run_dir, run.get("data"), digest))
    distinct = [run for i, run in enumerate(fitted)
                if not any(_same_data(other[2], run[2]) for other in fitted[:i])]
    if len(distinct) < 2:
        return
    named = ", ".join(f"{terminal_text(d.name)}: {terminal_text(str(spec))[:200]} "
                      f"({short_fingerprint(digest)})" for d, spec, digest in distinct[:4])
    first, spec, _ = distinct[0]
    raise ParameterError(f"the runs in {terminal_text(path)} were fitted on "
                         f"{len(distinct)} different data ({named}); one --data cannot be "
                         f"the data of each: report each run alone, e.g. elbokit report "
                         f"{terminal_text(first)} --data {terminal_text(str(spec))[:200]}")


def no_figure(run_dir: Path, spec: str | None) -> str:
    """The one line of a run whose report would hold no figure."""
    if spec is None:
        return (f"{run_dir} names no data and its model gives no figure without data; "
                "pass --data SPEC (the data it was fitted on) to draw its figures")
    return f"{run_dir}: no figure could be drawn for its model on {spec}"


def own_data(run_dir: Path, run: dict) -> str | None:
    """The data a report draws a run on without --data: the built-in data set it was
    fitted on, or None (a run saved from Python names none). A path run.json names is
    never opened (a run directory received from someone could name any file on this
    disk, and the page would show it): refused, saying to pass it as --data."""
    from .data import SPECS
    from .exceptions import ParameterError

    recorded = run.get("data")
    if recorded is None or recorded in SPECS:
        return recorded
    fingerprint = recorded_fingerprint(run)
    digest = f" ({short_fingerprint(fingerprint)})" if fingerprint else ""
    raise ParameterError(f"{run_dir} was fitted on {recorded}{digest}; the report reads no "
                         "file or folder that a run directory names: pass the data as --data "
                         "(checked against the digest the run recorded)")


def given_data_note(run: dict, run_dir: Path, spec: str) -> str:
    """The page's line on the data given by --data: given for a run that names none,
    the data the run was fitted on (the digests agree), or other data, named with both
    digests on the page and in a :class:`~elbokit.exceptions.DataMismatchWarning`."""
    from .exceptions import DataMismatchWarning

    if run.get("data") is None:
        return f"<p>data: {html.escape(spec)}, given to the report (the run names none)</p>"
    fingerprint = recorded_fingerprint(run)
    if fingerprint is None:
        return (f"<p>data: {html.escape(spec)}, given to the report (the run records no "
                "digest of its data to check it against)</p>")
    difference = data_difference(run, spec)
    if difference is None:
        return (f"<p>data: {html.escape(spec)}, the data the run was fitted on "
                f"({html.escape(short_fingerprint(fingerprint))})</p>")
    warn(f"{run_dir}: {difference}: its figures are drawn on the data given, its "
         "training curve and metrics.json are the fit's", DataMismatchWarning)
    return (f"<p><b>warning: other data.</b> {html.escape(difference)}: the figures are "
            "drawn on the data given; the training curve and the metrics are the fit's.</p>")


def dataset_of(run: dict, run_dir: Path, model, spec: str, datasets: dict,
               loaded: dict | None, load_options: dict):
    """The data ``spec`` of a run's figures, split as the fit split it and read with
    ``load_options`` (an image folder's resize and crop), checked against the model;
    ``datasets`` caches the loaded data by key, ``loaded`` records (key, model)."""
    from . import data as data_module
    from .exceptions import DataError

    columns = recorded_columns(run, run_dir)  # the columns chosen by name at fit
    key = (spec, int(run.get("seed", 0)), _test_fraction(run, run_dir),
           json.dumps(load_options, sort_keys=True), json.dumps(columns))
    if key not in datasets:  # runs of one directory usually share their data
        # NaN entries of user files are missing values (the models fitted on such
        # files accept them; image data sets never hold NaN); the split is the fit's
        datasets[key] = data_module.load(key[0], seed=key[1], test_fraction=key[2],
                                         allow_nan=True, columns=columns,
                                         **load_options)
    dataset = datasets[key]
    if dataset.n_features != model.n_features_in_:
        raise DataError(f"{spec} has {dataset.n_features} features but the model in "
                        f"{run_dir} was fitted on {model.n_features_in_}")
    check_image_shape(run, run_dir, model, dataset, spec)
    if loaded is not None:
        loaded[run_dir] = (key, model)
    return dataset


def _test_fraction(run: dict, run_dir: Path) -> float:
    """The held-out share the run was fitted with (its key; the default for runs
    recorded before keys)."""
    from .data import DEFAULT_TEST_FRACTION

    value = (run.get("key") or {}).get("test_fraction", DEFAULT_TEST_FRACTION)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ModelFileError(f"{run_dir / RUN_FILE}: field 'key.test_fraction' must lie in "
                             f"[0, 1); got {str(value)[:40]}")
    return float(value)
