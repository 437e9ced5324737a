"""The commit of a run (:func:`commit_run`) and the error of one that failed before it
(:func:`discarded`): the save path of :func:`elbokit.runs.fit_and_record`."""

from __future__ import annotations

from pathlib import Path

from .exceptions import ElbokitError, SaveError
from .models import save_model
from .persistence import METRICS_FILE, MODEL_FILE, RUN_FILE, atomic_write_json, write_manifest
from .persistence.commit import COMMITTED_FILES, swap_in
from .persistence.files import is_write_error, write_failure

CHECKPOINTS = "checkpoints"  # runs.VAE_CHECKPOINTS: a fit's checkpoint directory


def commit_run(model, stage: Path, out: Path, lock, *, run: dict, metrics: dict,
               extra: dict) -> None:
    """Write the run into ``stage`` (the model with ``extra``, its JSON, run.json,
    metrics.json, then the manifest of their digests), lock it (``lock``: the run's
    :class:`~elbokit.runs.RunLock`) and swap it in for ``out`` in one rename."""
    try:
        save_model(model, stage, extra=extra)
        atomic_write_json(stage / RUN_FILE, run)
        atomic_write_json(stage / METRICS_FILE, metrics)
        write_manifest(stage, COMMITTED_FILES)
        lock.adopt(stage)
        swap_in(stage, out)
    except BaseException as exc:  # a write error of any kind: one line, naming the free space
        if isinstance(exc, SaveError) or not is_write_error(exc):
            raise
        raise SaveError(write_failure(getattr(exc, "filename", None) or stage, exc)) from None


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
