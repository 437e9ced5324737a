"""The commit of a run: :func:`commit_run` (the save path of
:func:`elbokit.runs.fit_and_record`), :func:`save_run` (Python's ``save``: a model
saved alone, :func:`elbokit.models.save_model`), the error of one that failed before
its swap (:func:`discarded`), and :func:`write_model`, the files of a model written
into a directory as they are (a commit's writer: no staging of its own)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ._run_lock import RunLock
from .exceptions import ElbokitError, ParameterError, SaveError
from .kinds import get_kind, kind_of
from .persistence import (METRICS_FILE, MODEL_FILE, RUN_FILE, atomic_write_json,
                          save_estimator, write_manifest)
from .persistence.commit import (COMMITTED_FILES, STAGE_MARK, clean_stale, new_stage,
                                 remove_tree, swap_in)
from .persistence.files import is_write_error, write_failure

CHECKPOINTS = "checkpoints"  # runs.VAE_CHECKPOINTS: a fit's checkpoint directory


def write_model(model, directory: str | os.PathLike, *, extra: dict | None = None,
                named: str | os.PathLike | None = None) -> Path:
    """Write ``model``'s model.json and tensors into ``directory`` itself (no commit:
    the writer of one). ``named``: the directory the model is saved to, for its
    warnings (``directory`` is then its staging directory)."""
    kind = get_kind(kind_of(model))
    if kind.persistence == "own":  # the torch models write their own files
        return model.write_files(directory, extra=extra, named=named)
    return save_estimator(model, directory, kind=kind.name, extra=extra)


def check_saveable(model) -> None:
    """Refuse, before anything is written, a model that is not fitted or of no kind."""
    kind = get_kind(kind_of(model))
    if kind.persistence == "own":
        model._check_fitted()
    else:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(model)


def commit_run(model, stage: Path, out: Path, lock, *, run: dict, metrics: dict,
               extra: dict) -> None:
    """Write the run into ``stage`` (the model with ``extra``, its JSON, run.json,
    metrics.json, then the manifest of their digests), lock it (``lock``: the run's
    :class:`~elbokit.runs.RunLock`) and swap it in for ``out`` in one rename."""
    def write(stage: Path) -> None:
        write_model(model, stage, extra=extra, named=out)
        atomic_write_json(stage / RUN_FILE, run)
        atomic_write_json(stage / METRICS_FILE, metrics)

    commit_stage(stage, out, lock, write, COMMITTED_FILES)


def commit_stage(stage: Path, out: Path, lock, write: Callable[[Path], None],
                 names=None) -> None:
    """``write(stage)``, the manifest of the files ``names`` (default: the run's files
    that ``write`` wrote; written last), the lock of ``stage`` and its swap for ``out``;
    a write error of any kind is one :class:`SaveError` line naming the file and the
    free space."""
    try:
        write(stage)
        write_manifest(stage, names if names is not None else
                       [name for name in COMMITTED_FILES if os.path.lexists(stage / name)])
        lock.adopt(stage)
        swap_in(stage, out)
    except BaseException as exc:
        if isinstance(exc, SaveError) or not is_write_error(exc):
            raise
        raise SaveError(write_failure(getattr(exc, "filename", None) or stage, exc)) from None


def save_run(directory: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Save a run to ``directory`` as one commit, as ``elbokit fit`` does: under the
    directory's lock, what a killed save left is cleaned, ``write(stage)`` writes the
    files into a staging directory beside it, the manifest of the run's files (here
    model.json, the tensors, run.json) is written last and the stage swapped in by one
    rename. A failure before the swap leaves ``directory`` as it was (one line saying
    so); the directory's other files are kept. Returns ``directory``."""
    target = _save_target(directory)
    with RunLock(target) as lock:
        clean_stale(target)
        stage = _stage_of(target)
        cwd = _is_cwd(target)
        try:
            commit_stage(stage, target, lock, write)
        except BaseException as exc:
            if not os.path.lexists(stage / STAGE_MARK):  # swapped: ``stage`` is the old
                raise  # run, its files moved back at the next start (clean_stale)
            error = discarded(exc, stage, target)
            remove_tree(stage)
            raise error from None
        if cwd:  # the process's working directory was the old one, now removed
            os.chdir(target)
    return Path(directory)


def _save_target(directory: str | os.PathLike) -> Path:
    """``directory`` as an absolute path, refused with one line where a save cannot
    swap a new directory in: a symbolic link (never followed), a file, a mount point."""
    target = Path(os.path.abspath(directory))
    if target.is_symlink():
        raise ParameterError(f"{directory} is a symbolic link (to {os.readlink(target)}); "
                             "save to the directory itself (a save replaces the directory "
                             "and never follows a link)")
    if target.exists() and not target.is_dir():
        raise ParameterError(f"{directory} is a file, not a run directory; choose a "
                             "directory to save to")
    if target.is_dir() and os.path.ismount(target):
        raise ParameterError(f"{directory} is a mount point: a save swaps a new directory "
                             "in by one rename, which a mount point cannot take; save to a "
                             "folder inside it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveError(write_failure(target.parent, exc)) from None
    return target


def _stage_of(target: Path) -> Path:
    """The staging directory of ``target``, or one line on why it cannot be made."""
    try:
        return new_stage(target)
    except OSError as exc:
        raise SaveError(f"cannot create the staging directory of {target} in "
                        f"{target.parent} ({exc.strerror or exc}): a save writes the new run "
                        "beside the old one and swaps it in, so that folder must be "
                        "writable") from None


def _is_cwd(path: Path) -> bool:
    try:
        return os.path.samefile(os.getcwd(), path)
    except OSError:
        return False


def discarded(exc: BaseException, stage: Path, out: Path) -> BaseException:
    """The error of a fit or save that failed before its commit, saying that ``out``
    keeps what it held (an interrupted fit that trained in the staging directory
    leaves no checkpoint to resume from). Called before ``stage`` is removed."""
    kept = (f"nothing was replaced: {out} keeps the previous run" if (out / MODEL_FILE).exists()
            else f"nothing was saved to {out}")
    text = str(exc)
    if type(exc).__name__ == "TrainingInterrupted" and (stage / CHECKPOINTS).exists():
        return type(exc)(f"training interrupted; {kept} (an --overwrite fit replaces the run "
                         "only when it ends: its checkpoints are discarded)")
    if isinstance(exc, ElbokitError) and (isinstance(exc, SaveError) or str(stage) in text):
        message = text.replace(str(stage / CHECKPOINTS), "the staging directory")
        return type(exc)(f"{message.replace(str(stage), str(out))}; {kept}")
    return exc
