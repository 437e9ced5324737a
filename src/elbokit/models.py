"""One entry point to save and load any elbokit model directory.

Each model kind has a name (``pca``, ``ppca``, ``fa``, ``linear-ae``, ``vbpca``,
``vae``, ``ae``); ``model.json`` records it and :func:`load_model` dispatches on it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .kinds import estimator_classes, kind_of  # noqa: F401  (kind_of: re-exported)
from .persistence import load_estimator, read_model_file, save_estimator


def classical_registry() -> dict[str, type]:
    """Kind name -> estimator class, for the numpy models (VBPCA when available); derived
    from the one registry of model kinds, :mod:`elbokit.kinds`."""
    return estimator_classes()


def save_model(model, directory: str | os.PathLike, *, extra: dict | None = None) -> Path:
    """Save a fitted model to ``directory`` (arrays in safetensors, the rest in JSON;
    ``extra``: JSON kept in model.json, e.g. the data's feature names)."""
    kind = kind_of(model)
    if kind in ("vae", "ae"):  # the torch models save themselves
        model.save(directory, extra=extra)
        return Path(directory)
    return save_estimator(model, directory, kind=kind, extra=extra)


def load_model(directory: str | os.PathLike, *, encoder_class=None, decoder_class=None):
    """Load any model saved by elbokit, checking its format version and files; model.json
    is read once and every field of it is checked before it is used. ``encoder_class``,
    ``decoder_class``: the classes of a VAE's custom networks (see ``VAE.load``)."""
    meta = read_model_file(directory)
    if meta.get("kind") == "vae":
        from .nn import VAE

        return VAE.load(directory, meta=meta, encoder_class=encoder_class,
                        decoder_class=decoder_class)
    if meta.get("kind") == "ae":
        from .nn import Autoencoder

        return Autoencoder.load(directory, meta=meta)
    return load_estimator(directory, classical_registry(), meta)
