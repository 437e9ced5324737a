"""One entry point to save and load any elbokit model directory.

Each model kind has a name (``pca``, ``ppca``, ``fa``, ``linear-ae``, ``vbpca``,
``vae``, ``ae``); ``model.json`` records it and :func:`load_model` finds the loader in
the one registry of kinds (:mod:`elbokit.kinds`): a kind that saves itself
(``persistence="own"``) is loaded by its class's ``load``, the numpy models by
:func:`elbokit.persistence.load_estimator`. Every kind writes the one model.json
schema (:mod:`elbokit.persistence.model_file`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .kinds import estimator_classes, get_kind, kind_of, saved_kind  # noqa: F401
from ._run_commit import check_saveable, save_run, write_model
from .persistence import load_estimator, read_model_file


def classical_registry() -> dict[str, type]:
    """Kind name -> estimator class, for the numpy models (VBPCA when available); derived
    from the one registry of model kinds, :mod:`elbokit.kinds`."""
    return estimator_classes()


def save_model(model, directory: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Save a fitted model to ``directory`` as one commit, as ``elbokit fit`` saves a
    run: model.json, the tensors (safetensors), a run.json of the model alone
    (:func:`elbokit.runs.model_run`) and manifest.json (their digests) are written into
    a staging directory beside ``directory`` and swapped in by one rename, so a failed
    or killed save leaves the previous one whole; the directory's other files are kept.
    ``extra``: JSON kept in model.json, e.g. the data's feature names."""
    from .runs import write_model_run  # runs imports this module

    check_saveable(model)

    def write(stage: Path) -> None:
        write_model(model, stage, extra=extra, named=directory)
        write_model_run(model, stage, extra)

    return save_run(directory, write)


def load_model(directory: str | os.PathLike, *, networks=None, encoder=None, decoder=None,
               encoder_class=None, decoder_class=None):
    """Load any model saved by elbokit, checking its format version and files; model.json
    is read once and every field of it is checked before it is used.

    The custom networks of a VAE or an Autoencoder come from the caller (see
    ``VAE.load``): ``networks``, the dict :func:`elbokit.nn.protocols.import_networks`
    returns (the CLI's ``--networks FILE.py``; ignored by models without custom
    networks), ``encoder``/``decoder`` module objects, or ``encoder_class``/
    ``decoder_class``."""
    meta = read_model_file(directory)
    kind = saved_kind(meta.get("kind"))
    if kind is not None and kind.persistence == "own":
        given = {"networks": networks, "encoder": encoder, "decoder": decoder,
                 "encoder_class": encoder_class, "decoder_class": decoder_class}
        return kind.resolve().load(directory, meta=meta,
                                   **{k: v for k, v in given.items() if v is not None})
    return load_estimator(directory, classical_registry(), meta)
