"""Persistence: the package that owns elbokit's file formats.

Everything that reaches the disk goes through here:

- :mod:`~elbokit.persistence.files`: file names, the format version, atomic writes and
  the stop flag, JSON reading with limits, SHA-256 checksums, a run's manifest and
  description digests;
- :mod:`~elbokit.persistence.commit`: a run directory saved as one commit (a staging
  directory beside it, its manifest, one rename);
- :mod:`~elbokit.persistence.checks`: the value checks of a file's fields;
- :mod:`~elbokit.persistence.memory`: the one memory probe and its check;
- :mod:`~elbokit.persistence.tensors`: safetensors files, header checks first;
- :mod:`~elbokit.persistence.model_file`: the one ``model.json`` schema of every kind
  (``write``, ``read`` -> ``ModelRecord``);
- :mod:`~elbokit.persistence.estimators`: the classical models in that schema;
- :mod:`~elbokit.persistence.records`: a run's ``run.json`` and ``metrics.json``.

Never pickle: a model directory holds ``model.json`` and ``weights.safetensors``.
Every file is written to a temporary name in the same directory, flushed to disk, and
renamed over the old one, so a crash leaves either the old file or the new one, never
half of one. ``model.json`` is written last: it is the commit record of a model, and its
checksums catch a tensor file from another save; a run's ``manifest.json`` is the
commit record of the whole run (model, run.json, metrics.json).
"""

from . import model_file
from .checks import check_int, check_number, check_str_list, check_type
from .estimators import (FITTED_NAME, POSITIVE_ATTRIBUTES, REQUIRED_ATTRIBUTES,
                         load_estimator, save_estimator)
from .files import (CHECKPOINT_FILE, CHECKPOINT_NAME, DESCRIPTION_KEY, FORMAT_VERSION,
                    MANIFEST_FILE, MAX_JSON_BYTES, MAX_SEED, METRICS_FILE, MODEL_FILE,
                    RUN_FILE, WEIGHTS_FILE, atomic_write_bytes, atomic_write_json,
                    atomic_write_with, check_checksum, check_description,
                    check_format_version, check_manifest, clear_stop, description_digest,
                    read_json, read_manifest, request_stop, sha256_file, stop_requested,
                    write_manifest)
from .memory import available_memory, check_memory
from .model_file import FEATURE_NAMES, ModelRecord
from .model_file import read_meta as read_model_file
from .records import read_metrics, read_run
from .tensors import (MAX_HEADER_BYTES, MAX_TENSORS, NUMPY_DTYPES, SAFETENSORS_DTYPES,
                      header_bytes, load_arrays, read_safetensors, read_safetensors_header,
                      save_arrays, write_safetensors)

__all__ = [
    "CHECKPOINT_FILE", "CHECKPOINT_NAME", "DESCRIPTION_KEY", "FEATURE_NAMES",
    "FITTED_NAME", "FORMAT_VERSION", "MANIFEST_FILE", "MAX_HEADER_BYTES", "MAX_JSON_BYTES", "MAX_SEED",
    "MAX_TENSORS", "METRICS_FILE", "MODEL_FILE", "ModelRecord", "NUMPY_DTYPES",
    "POSITIVE_ATTRIBUTES", "REQUIRED_ATTRIBUTES", "RUN_FILE", "SAFETENSORS_DTYPES",
    "WEIGHTS_FILE", "atomic_write_bytes", "atomic_write_json", "atomic_write_with",
    "available_memory", "check_checksum", "check_description", "check_format_version",
    "check_int", "check_manifest", "check_memory", "check_number", "check_str_list", "check_type", "clear_stop",
    "description_digest", "header_bytes", "load_arrays", "load_estimator", "model_file",
    "read_json", "read_manifest", "read_metrics", "read_model_file", "read_run", "read_safetensors",
    "read_safetensors_header", "request_stop", "save_arrays", "save_estimator",
    "sha256_file", "stop_requested", "write_manifest", "write_safetensors",
]
