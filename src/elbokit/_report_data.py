"""The data of a report's runs: the data set a run's figures are drawn on (its own, or
the caller's --data for a run saved without), the checks of --data, and the metrics of
a run that has no metrics.json."""

from __future__ import annotations

import html
import json
from pathlib import Path

from .exceptions import ModelFileError
from .persistence import RUN_FILE, read_run
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


def no_figure(run_dir: Path, spec: str | None) -> str:
    """The one line of a run whose report would hold no figure."""
    if spec is None:
        return (f"{run_dir} names no data and its model gives no figure without data; "
                "pass --data SPEC (the data it was fitted on) to draw its figures")
    return f"{run_dir}: no figure could be drawn for its model on {spec}"


def _recorded_data(run_dir: Path) -> str | None:
    """The data spec run.json names (None: none, or no run.json)."""
    return read_run(run_dir).get("data") if (run_dir / RUN_FILE).is_file() else None


def check_data_option(path: Path, run_dirs: list[Path], data: str | None) -> None:
    """``data`` (the caller's --data) draws the runs that name no data; refused where
    every run names its own and one differs (the run's record is never replaced)."""
    from .exceptions import ParameterError

    if data is None:
        return
    recorded = {run_dir: _recorded_data(run_dir) for run_dir in run_dirs}
    if None in recorded.values() or all(spec == data for spec in recorded.values()):
        return
    if len(run_dirs) == 1:
        raise ParameterError(f"--data {data}: the run in {run_dirs[0]} was fitted on "
                             f"{recorded[run_dirs[0]]}, and its report draws that data "
                             "(leave out --data)")
    raise ParameterError(f"--data {data}: every run in {path} names the data it was fitted "
                         "on, and its report draws that; --data is for a run saved without "
                         "(leave it out)")


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
