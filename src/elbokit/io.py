"""Old name of :mod:`elbokit.persistence`, kept so that ``elbokit.io`` imports keep
working: the public names this module had, re-exported unchanged (the same objects, so
the stop flag is shared). New code imports from :mod:`elbokit.persistence`."""

from .persistence import (ARRAYS_FILE, DESCRIPTION_KEY, FEATURE_NAMES, FITTED_NAME,
                          FORMAT_VERSION, MAX_HEADER_BYTES, MAX_JSON_BYTES, MAX_TENSORS,
                          MODEL_FILE, NUMPY_DTYPES, POSITIVE_ATTRIBUTES, REQUIRED_ATTRIBUTES,
                          SAFETENSORS_DTYPES, atomic_write_bytes, atomic_write_json,
                          atomic_write_with, available_memory, check_description,
                          check_format_version, check_int, check_memory, check_number,
                          check_str_list, check_type, clear_stop, description_digest,
                          header_bytes, load_arrays, load_estimator, read_json,
                          read_safetensors_header, request_stop, save_arrays, save_estimator,
                          sha256_file, stop_requested)  # noqa: F401
