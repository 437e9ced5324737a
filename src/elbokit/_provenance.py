"""What a run was fitted on, checked against what it is given: the data (by digest,
named briefly), the split and its seed, the image shape.

``report`` and ``evaluate`` read only the data the command line names (a run's
recorded path is never opened): a recorded digest that differs from the given
data's is named (:func:`data_difference`), an image shape that differs is refused
(:func:`check_image_shape`). ``fit vae --resume`` refuses to continue a checkpoint
on other data, another split or seed, or another image shape
(:func:`check_continued`): the run writes what it trains on into its checkpoint
directory when training starts (:func:`write_continued`). ``VAE.fit`` itself, from
Python as under the CLI, adds the digest of the rows it is given to the same record
(:func:`rows_digest`, :class:`RowsRecord`) and refuses to resume on other rows
(:func:`check_rows`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ._run_keys import data_fingerprint
from ._text import terminal_text
from .exceptions import DataError, ModelFileError, ParameterError

CONTINUED_FILE = "data.json"  # in checkpoints/: the data and split the checkpoint trains on
ROWS = "rows"  # its digest of the rows VAE.fit was given (X, y's coding, validation rows)
_SPLIT = ("data", "seed", "test_fraction", "load_options", "columns")
_NONE_IS_A_VALUE = ("load_options", "columns", "image_shape")  # None: none, every column, a table


def short_fingerprint(fingerprint) -> str:
    """A data fingerprint (:func:`elbokit.runs.data_fingerprint`) in a few words: "the
    built-in digits", "sha256 1a2b3c4d" (a file), "a folder of 12 files, digest
    1a2b3c4d"."""
    text = str(fingerprint)
    kind, _, value = text.partition(":")
    if kind == "builtin":
        return f"the built-in {terminal_text(value.split('@', 1)[0])[:40]}"
    if kind == "sha256":
        return f"sha256 {value[:8]}"
    if kind == "dir":
        files = value.count(",") + 1 if value else 0
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        return f"a folder of {files} files, digest {digest}"
    return terminal_text(text)[:40]


def _same_data(recorded: str, given: str) -> bool:
    """Equal fingerprints; a built-in data set by its name (its directory aside)."""
    if recorded.startswith("builtin:") and given.startswith("builtin:"):
        return recorded.split("@", 1)[0] == given.split("@", 1)[0]
    return recorded == given


def recorded_fingerprint(run: dict) -> str | None:
    """The digest of the data the run was fitted on (run.json's ``key.data``), or None
    (a run saved from Python, or recorded before keys)."""
    key = run.get("key")
    value = key.get("data") if isinstance(key, dict) else None
    return value if isinstance(value, str) else None


def data_difference(run: dict, spec: str, data_dir=None) -> str | None:
    """None where ``spec`` holds the data the run was fitted on (or the run records no
    digest); else the words naming both, for a page and a terminal line."""
    recorded = recorded_fingerprint(run)
    if recorded is None:
        return None
    given = data_fingerprint(spec, data_dir)
    if _same_data(recorded, given):
        return None
    fitted_on = terminal_text(str(run.get("data")))[:80]
    return (f"{terminal_text(spec)} ({short_fingerprint(given)}) is not the data the run "
            f"was fitted on ({fitted_on}, {short_fingerprint(recorded)})")


def _shape_words(shape: tuple) -> str:
    channels, h, w = shape
    return f"{h}x{w} images" + ("" if channels == 1 else f" of {channels} channels")


def fitted_image_shape(run: dict, model) -> tuple | None:
    """(channels, h, w) of the images the run was fitted on: run.json's, else the
    model's own setting; None for a model of a table."""
    shape = run.get("image_shape")
    channels = run.get("channels", 1)
    if not shape:
        params = model.get_params() if hasattr(model, "get_params") else {}
        shape, channels = params.get("image_shape"), params.get("channels", 1) or 1
    if not shape or len(shape) != 2:
        return None
    return (int(channels), int(shape[0]), int(shape[1]))


def check_image_shape(run: dict, run_dir, model, dataset, spec: str) -> None:
    """Refuse images of another shape than the model was fitted on (the same number of
    pixels, 8x8 against 4x16, is not the same image), in one line naming both."""
    fitted = fitted_image_shape(run, model)
    if fitted is None or dataset.image_shape is None:
        return  # a table, or rows of pixels without a shape: the feature count decides
    given = (int(dataset.channels), *map(int, dataset.image_shape))
    if given != fitted:
        raise DataError(f"the model in {terminal_text(run_dir)} was fitted on "
                        f"{_shape_words(fitted)}; {terminal_text(spec)} holds "
                        f"{_shape_words(given)}")


def continued_record(key: dict, dataset, spec: str) -> dict:
    """What a run trains on, as its checkpoint directory records it: the data's digest,
    the split and its seed (the key's), the image shape and the data spec (to name)."""
    record = _split_of(key)
    record["image_shape"] = list(dataset.image_shape) if dataset.image_shape else None
    record["channels"] = int(dataset.channels)
    record["spec"] = str(spec)
    return record


def _split_of(key: dict) -> dict:
    """The data's digest and the split of a run key: the test split's share and seed,
    the VAE's validation share (a setting of the model, in the key's params), the
    image folder's load options and the table's columns."""
    record = {name: key.get(name) for name in _SPLIT}
    params = key.get("params")
    record["validation_fraction"] = \
        params.get("validation_fraction") if isinstance(params, dict) else None
    return record


def write_continued(checkpoint_dir, record: dict) -> None:
    """Write ``record`` (:func:`continued_record`) into the checkpoint directory; the
    digest of the rows that ``VAE.fit`` recorded there at this start (it writes first,
    :class:`RowsRecord`) is kept when ``record`` has none."""
    from .persistence import atomic_write_json

    path = Path(checkpoint_dir) / CONTINUED_FILE
    if ROWS not in record and path.is_file():
        rows = _read_record(path).get(ROWS)
        record = record if rows is None else {**record, ROWS: rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)


def _read_record(path: Path) -> dict:
    from .persistence import read_json

    record = read_json(path, "checkpoint data record")
    if not isinstance(record, dict):
        raise ModelFileError(f"{terminal_text(path)} must hold a JSON object")
    return record


def rows_digest(*arrays) -> str:
    """"sha256:HEX" of the rows a fit is given: each array's type, shape, dtype and
    bytes in turn (a scipy sparse matrix by its CSR arrays; None as a marker)."""
    import numpy as np
    from scipy import sparse

    digest = hashlib.sha256()
    for array in arrays:
        if array is None:
            digest.update(b"none;")
            continue
        if sparse.issparse(array):
            csr = sparse.csr_matrix(array)
            parts = (csr.data, csr.indices, csr.indptr)
            digest.update(f"csr{csr.shape};".encode())
        else:
            parts = (np.asarray(array),)
        for part in parts:
            part = np.ascontiguousarray(part)
            digest.update(f"{part.dtype.str}{part.shape};".encode())
            digest.update(memoryview(part).cast("B"))
    return f"sha256:{digest.hexdigest()}"


def check_rows(checkpoint_dir, digest: str) -> None:
    """Refuse to resume the checkpoint in ``checkpoint_dir`` on rows other than those it
    trained on (the record's :data:`ROWS`), in one line naming both digests. A
    checkpoint without the record (written before elbokit kept one) is not checked."""
    path = Path(checkpoint_dir) / CONTINUED_FILE
    if path.is_file():
        _refuse_changes(checkpoint_dir, _read_record(path), {ROWS: digest})


class RowsRecord:
    """A training callback, the first of ``VAE.fit``'s list: at the start of training it
    records the rows' digest in the checkpoint directory (``resume``: beside what the
    record holds, e.g. the CLI's data and split; else as the whole record)."""

    def __init__(self, checkpoint_dir, digest: str, resume: bool):
        self.checkpoint_dir, self.digest, self.resume = Path(checkpoint_dir), digest, resume

    def on_train_start(self, model, config, data) -> None:
        path = self.checkpoint_dir / CONTINUED_FILE
        record = _read_record(path) if self.resume and path.is_file() else {}
        write_continued(self.checkpoint_dir, {**record, ROWS: self.digest})

    def on_epoch_end(self, epoch, record, model) -> None:
        pass

    def on_train_end(self, model, history, error=None) -> None:
        pass


def _recorded_continuation(out: Path, checkpoints: str) -> dict | None:
    """The record of what the run in ``out`` trained on: its checkpoint's, else the
    run.json of a completed fit (its key, image shape); None for neither (a checkpoint
    written before elbokit kept the record, a run saved from Python)."""
    from .persistence import RUN_FILE, read_json, read_run

    path = out / checkpoints / CONTINUED_FILE
    if path.is_file():
        return read_json(path, "checkpoint data record")
    if not (out / RUN_FILE).is_file():
        return None
    run = read_run(out)
    key = run.get("key")
    if not isinstance(key, dict):
        return None
    record = _split_of(key)
    record.update(image_shape=run.get("image_shape"), channels=run.get("channels", 1),
                  spec=run.get("data"))
    return record


def check_continued(out, checkpoints: str, record: dict) -> None:
    """Refuse to resume the run in ``out`` on other data, another split or seed,
    other columns or another image shape than it trained on (``record``: the resumed
    fit's :func:`continued_record`), in one line naming each value it had and is
    given. A checkpoint without a record (written before elbokit kept one) is not
    checked."""
    saved = _recorded_continuation(Path(out), checkpoints)
    if saved is not None:
        _refuse_changes(out, saved, record)


def _refuse_changes(out, saved: dict, record: dict) -> None:
    """The ParameterError of :func:`check_continued` for each of ``record``'s values that
    differs from the ``saved`` record's."""
    changes = []
    for name in (*_SPLIT, "validation_fraction", "image_shape", "channels", ROWS):
        if name not in record or name not in saved:  # a Python fit records its rows alone
            continue
        old, new = saved.get(name), record.get(name)
        if name == "channels":
            old, new = old or 1, new or 1
        if name == ROWS and isinstance(old, str) and old != new:
            changes.append(f"the rows {short_fingerprint(old)}, given "
                           f"{short_fingerprint(new)}")
        elif name == "data" and isinstance(old, str) and isinstance(new, str):
            if not _same_data(old, new):
                changes.append(f"the data: {terminal_text(str(saved.get('spec')))[:80]} "
                               f"({short_fingerprint(old)}), given "
                               f"{terminal_text(str(record.get('spec')))[:80]} "
                               f"({short_fingerprint(new)})")
        elif (old is not None and new is not None or name in _NONE_IS_A_VALUE) \
                and _jsonable(old) != _jsonable(new):
            changes.append(f"{name} {_value(old)}, given {_value(new)}")
    if changes:
        raise ParameterError(f"cannot resume {terminal_text(out)}: it trained on "
                             f"{'; '.join(changes)} (resume with what it trained on, or "
                             "start a new run in another directory)")


def check_resumable(out: Path, kind: str) -> None:
    """Refuse ``--resume`` into a directory holding a saved model of another kind (the
    training settings are compared by :func:`elbokit.nn.train.resume.check_resume`, the
    architecture when the checkpoint is loaded)."""
    from .persistence import MODEL_FILE, read_json

    model_file = Path(out) / MODEL_FILE
    if model_file.is_file():
        try:
            saved = read_json(model_file, "model file").get("kind")
        except ModelFileError:
            saved = None
        if saved != kind:
            raise ParameterError(f"{out} holds a {str(saved)[:20]!r} model, not a {kind} run; "
                                 "--resume continues only a run of the same model (choose "
                                 "another --out, or --overwrite without --resume)")


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def _value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, list) and all(isinstance(v, int) for v in value) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return terminal_text(json.dumps(value, default=str))[:60]
