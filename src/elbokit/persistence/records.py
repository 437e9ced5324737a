"""Run records: a run's ``run.json`` (its resolved settings) and ``metrics.json`` (its
scores), read with every field checked."""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..exceptions import ModelFileError
from .checks import check_int, check_str_list, check_type
from .files import MAX_SEED, METRICS_FILE, RUN_FILE, read_json

_RUN_FIELDS = {"kind": str, "data": (str, type(None)), "seed": int, "latent": (int, type(None)),
               "image_shape": (list, type(None)), "params": dict, "key": (dict, type(None)),
               "feature_names": (list, type(None)), "target_names": (list, type(None)),
               "validation_fraction": (int, float), "resumed": bool, "channels": int,
               "load_options": dict}


def read_run(run_dir: str | os.PathLike) -> dict:
    """run.json of ``run_dir``, every field checked (types, ranges)."""
    path = Path(run_dir) / RUN_FILE
    run = read_json(path, "run file")
    for name, types in _RUN_FIELDS.items():
        if name in run:
            check_type(run[name], types, name, path)
    if "seed" in run:
        check_int(run["seed"], "seed", path, 0, MAX_SEED)
    if run.get("latent") is not None:
        check_int(run["latent"], "latent", path, 1, 2**31)
    if run.get("image_shape") is not None:
        shape = run["image_shape"]
        if len(shape) != 2 or not all(isinstance(s, int) and not isinstance(s, bool)
                                       and 1 <= s <= 2**16 for s in shape):
            raise ModelFileError(f"{path}: field 'image_shape' must be two positive integers; "
                                 f"got {str(shape)[:40]}")
    for name in ("feature_names", "target_names"):
        check_str_list(run.get(name), name, path)
    if "channels" in run:
        check_int(run["channels"], "channels", path, 1, 4)
    options = run.get("load_options", {})
    resize, crop = options.get("resize"), options.get("crop")
    names = [options.get(key) for key in ("layer", "labels")]  # an .h5ad's
    if set(options) - {"resize", "crop", "layer", "labels"} or crop not in (None, "center") \
            or not all(name is None or isinstance(name, str) and name for name in names) \
            or resize is not None and not (isinstance(resize, list) and len(resize) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 2**16
                for v in resize)):
        raise ModelFileError(f"{path}: field 'load_options' must hold resize (two positive "
                             f"integers or null) and crop (\"center\" or null), or an .h5ad's "
                             f"layer and labels (names or null); got {str(options)[:60]}")
    return run


def read_metrics(run_dir: str | os.PathLike) -> dict:
    """metrics.json of ``run_dir``: an object of numbers (finite), strings, booleans
    or null."""
    path = Path(run_dir) / METRICS_FILE
    metrics = read_json(path, "metrics file")
    for name, value in metrics.items():
        if isinstance(value, (list, dict)):
            raise ModelFileError(f"{path}: metric {name[:40]!r} must be a number, a string, "
                                 "true/false or null")
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelFileError(f"{path}: metric {name[:40]!r} is not finite")
    return metrics
