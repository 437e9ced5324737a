"""``elbokit fit ae``: the deterministic autoencoder (:class:`elbokit.Autoencoder`).
Its options are the config fields the Autoencoder takes
(:func:`elbokit.nn.config.autoencoder_settings`), built as ``fit vae`` builds its own.
Torch is imported when it runs."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import typer

from ..nn.config import AUTOENCODER_DEFAULTS, AUTOENCODER_HELP, autoencoder_settings
from .common import (DataSpec, Out, config_option, load_dataset, model_settings, print_saved,
                     record_fit, shared_fit_options, with_options)


def _fields():
    return [f for f in autoencoder_settings() if f.metadata["cli"]]


def _options():
    return [config_option(f, AUTOENCODER_DEFAULTS.get(f.name, dataclasses.MISSING),
                          AUTOENCODER_HELP.get(f.name)) for f in _fields()]


def _run(data: DataSpec = "digits", out: Out = Path("runs/ae")):
    """The run's options beside the model's."""


def fit_ae(**options):
    """Deterministic autoencoder: the VAE's networks trained on reconstruction error
    (no prior, no density)."""
    from ..nn import Autoencoder
    from ..runs import prepare_out_dir

    prepare_out_dir(options["out"], overwrite=options["overwrite"])
    dataset = load_dataset(options)
    settings = model_settings(_fields(), options, AUTOENCODER_DEFAULTS)
    model = Autoencoder(**settings, image_shape=dataset.image_shape, seed=options["seed"])
    metrics = record_fit(model, dataset, options)
    print_saved(f"ae (L={model.latent_dim}, {model.likelihood}) on {options['data']}", metrics,
                options["out"])


with_options(_run, _options(), shared_fit_options)(fit_ae)


def register(fit_app: typer.Typer) -> None:
    """Add ``ae`` to the ``elbokit fit`` group (when torch is installed)."""
    if importlib.util.find_spec("torch") is not None:
        fit_app.command("ae")(fit_ae)
