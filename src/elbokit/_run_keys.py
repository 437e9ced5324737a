"""Run keys: everything that determines a fit (the model kind and settings, the data's
content, the seed, the held-out share), which ``compare`` matches before it reuses a run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .exceptions import ModelFileError
from .persistence import (METRICS_FILE, MODEL_FILE, RUN_FILE, check_manifest, read_run,
                          sha256_file)


def data_fingerprint(spec: str, data_dir=None) -> str:
    """What identifies the data: the SHA-256 of a data file's content, else the built-in
    data set's name (with its directory for the IDX data sets)."""
    path = Path(spec)
    if path.is_file():
        return "sha256:" + sha256_file(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return "dir:" + ",".join(f"{p.relative_to(path)}={sha256_file(p)}" for p in files)
    return f"builtin:{spec}" + (f"@{Path(data_dir).resolve()}" if data_dir else "")


def run_key(kind: str, params: dict, *, spec: str, seed: int, test_fraction,
            data_dir=None, **settings) -> dict:
    """Everything that determines a fit: the model kind and every setting (``params``,
    e.g. ``get_params()``: latent size, epochs, ...), the data's content, the seed and
    the held-out share. Two runs with equal keys are the same fit."""
    return {"kind": kind, "data": data_fingerprint(spec, data_dir), "seed": seed,
            "test_fraction": test_fraction,
            "params": {k: _jsonable(v) for k, v in sorted(params.items())},
            **{k: _jsonable(v) for k, v in sorted(settings.items())}}


def _jsonable(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    return repr(value)


def matching_run(run_dir: str | os.PathLike, key: dict) -> bool:
    """Whether ``run_dir`` holds a committed run (model, metrics, run.json, each file
    matching its digest in the run's manifest) whose key is ``key``. A run without a
    manifest, one whose files do not match it, or a run.json that fails its checks,
    does not match."""
    run_dir = Path(run_dir)
    if not all((run_dir / name).is_file() for name in (MODEL_FILE, RUN_FILE, METRICS_FILE)):
        return False
    try:
        check_manifest(run_dir)
        run = read_run(run_dir)
    except ModelFileError:
        return False
    return run.get("key") == _roundtrip(key)


def _roundtrip(obj):
    """``obj`` as it reads back from JSON (tuples become lists)."""
    import json

    return json.loads(json.dumps(obj))
