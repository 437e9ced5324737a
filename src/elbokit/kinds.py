"""The one registry of model kinds: each kind is declared once, here, with its name,
its class and how the command line builds it; everything else is derived from it:
:func:`kind_of` and :func:`estimator_classes` (saving and loading), ``CLASSICAL_KINDS``
and ``make_classical`` (``elbokit fit``, ``elbokit demo``), the models of
``elbokit compare`` and its ``build_model``.

A kind's class implements the model protocol (:mod:`elbokit.protocol`) and has
``kind`` as a class attribute. Classes are named by import path and imported on first
use, so the registry imports neither torch nor the VI models eagerly. A *preset* is a
second way for the command line to build a registered class (``vae-linear``: a VAE
with a linear decoder); it saves as its class's kind.

Add a kind (for example in a plug-in or a test)::

    register_kind(ModelKind("my-model", MyModel, build=lambda latent, **_: MyModel(latent)))
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .exceptions import ParameterError

#: compare's linear VAE: 2e-2 diverges on standardized digits (rare pixels reach 30 std)
LINEAR_VAE_LR = 5e-3


@dataclass(frozen=True)
class ModelKind:
    """One model kind.

    ``name``: the registry name (model.json's ``kind``, the CLI's model name).
    ``model_class``: the class, or its ``"module:attribute"`` path (imported lazily).
    ``build(latent, *, seed, verbose, epochs, **options)``: an unfitted model as the
    command line makes it. ``family``: ``"linear"`` (``elbokit fit <kind>``), ``"vi"``,
    ``"nn"`` or ``"other"``. ``persistence``: ``"estimator"`` (its numpy parameters and
    fitted attributes saved by :func:`elbokit.persistence.save_estimator`) or ``"own"`` (the class
    writes its files itself: ``write_files``/``load``; :func:`elbokit.models.save_model`
    commits them as for every kind). ``preset_of``: for a preset, the kind it saves as."""

    name: str
    model_class: type | str
    build: Callable
    family: str = "other"
    persistence: str = "estimator"
    preset_of: str | None = None

    def resolve(self) -> type:
        """The class (importing it on first use)."""
        if not isinstance(self.model_class, str):
            return self.model_class
        module, attribute = self.model_class.split(":")
        return getattr(importlib.import_module(module), attribute)


_KINDS: dict[str, ModelKind] = {}


def register_kind(kind: ModelKind) -> ModelKind:
    """Add ``kind`` to the registry (replacing one of the same name); returns it."""
    _KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind (for tests that register a temporary one)."""
    _KINDS.pop(name, None)


def kind_names(*, presets: bool = True, family: str | None = None) -> tuple[str, ...]:
    """Registered names in declaration order (``presets=False``: kinds only)."""
    return tuple(k.name for k in _KINDS.values()
                 if (presets or k.preset_of is None) and family in (None, k.family))


def get_kind(name: str, choices=None) -> ModelKind:
    """The kind called ``name``; a one-line ParameterError naming the choices if none."""
    choices = kind_names() if choices is None else tuple(choices)
    if name not in choices or name not in _KINDS:
        raise ParameterError(f"unknown model {name!r}; choose from {list(choices)}")
    return _KINDS[name]


def build_model(name: str, latent: int, *, seed: int = 0, verbose: bool = False,
                epochs: int | None = None, choices=None, **options):
    """An unfitted model of kind (or preset) ``name`` with ``latent`` latent dimensions."""
    return get_kind(name, choices).build(latent, seed=seed, verbose=verbose, epochs=epochs,
                                         **options)


def kind_of(model) -> str:
    """The kind name of a model instance: its class's ``kind``, if that kind is
    registered with exactly this class."""
    name = getattr(type(model), "kind", None)
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None or kind.preset_of is not None or _resolve_or_none(kind) is not type(model):
        raise ParameterError(f"cannot save a {type(model).__name__}: not an elbokit model")
    return name


def _resolve_or_none(kind: ModelKind):
    try:
        return kind.resolve()
    except ImportError:
        return None


def saved_kind(name) -> ModelKind | None:
    """The registered kind (not a preset) that model.json's ``kind`` field names, or None:
    how :func:`elbokit.models.load_model` finds the loader of a saved model."""
    kind = _KINDS.get(name) if isinstance(name, str) else None
    return kind if kind is not None and kind.preset_of is None else None


def estimator_classes() -> dict[str, type]:
    """Kind name -> class of every kind saved by :func:`elbokit.persistence.save_estimator`
    (the numpy models; a kind whose module cannot be imported is left out)."""
    classes = {}
    for kind in _KINDS.values():
        if kind.preset_of is None and kind.persistence == "estimator":
            cls = _resolve_or_none(kind)
            if cls is not None:
                classes[kind.name] = cls
    return classes


# --------------------------------------------------------------------------- the kinds
#
# Each builder takes (latent, *, seed, verbose, epochs, **options) and uses what its
# model has: the same constructor calls the CLI made before the registry existed.
# compare's --standardize and --validation-fraction reach every builder as ``standardize``
# and ``validation_fraction`` options; each keeps those its model has (_applicable).

def _applicable(options: dict, keep: tuple[str, ...]) -> dict:
    """``options`` without compare's shared settings that do not apply to the model (the
    ones in ``keep`` do), nor those left at None (the model's own default)."""
    shared = ("standardize", "validation_fraction")
    return {k: v for k, v in options.items()
            if k not in shared or (k in keep and v is not None)}


def _pca(latent, *, seed, verbose, epochs, **options):
    options = _applicable(options, ("standardize",))
    from .linear import PCA

    return PCA(latent, **options)


def _ppca(latent, *, seed, verbose, epochs, **options):
    options = _applicable(options, ("standardize",))
    from .linear import PPCA

    return PPCA(latent, random_state=seed, verbose=verbose, **options)


def _fa(latent, *, seed, verbose, epochs, **options):
    options = _applicable(options, ("standardize",))
    from .linear import FactorAnalysis

    return FactorAnalysis(latent, verbose=verbose, **options)


def _linear_ae(latent, *, seed, verbose, epochs, **options):
    options = _applicable(options, ("standardize",))
    from .linear import LinearAutoencoder

    return LinearAutoencoder(latent, random_state=seed, verbose=verbose, **options)


def _vbpca(latent, *, seed, verbose, epochs, **options):
    options = _applicable(options, ("standardize",))
    from .vi import VBPCA

    return VBPCA(latent, random_state=seed, **options)


def _vae_linear(latent, *, seed, verbose, epochs, **options):
    """Settings under which the linear VAE reaches FA's likelihood (tests/test_vae.py)."""
    options = _applicable(options, ("validation_fraction",))
    from .nn import VAE

    settings = dict(decoder="linear", likelihood="gaussian", epochs=epochs, seed=seed,
                    batch_size=64, lr=LINEAR_VAE_LR, lr_schedule="cosine", progress=False)
    return VAE(latent, **{**settings, **options})


def _vae(latent, *, seed, verbose, epochs, **options):
    """compare's VAE: Gaussian likelihood with learned variance, one hidden layer of 256."""
    options = _applicable(options, ("validation_fraction",))
    from .nn import VAE

    settings = dict(likelihood="gaussian", hidden=(256,), epochs=epochs, seed=seed,
                    progress=False)
    return VAE(latent, **{**settings, **options})


def _ae(latent, *, seed, verbose, epochs, **options):
    """compare's autoencoder: the compare VAE's networks (one hidden layer of 256), the
    squared-error loss (the Gaussian likelihood's reconstruction term)."""
    options = _applicable(options, ())
    from .nn import Autoencoder

    settings = dict(likelihood="gaussian", hidden=(256,), seed=seed,
                    **({} if epochs is None else {"epochs": epochs}))
    return Autoencoder(latent, **{**settings, **options})


def _semisupervised_vae(latent, *, seed, verbose, epochs, **options):
    """Model M2 (Kingma et al. 2014) at its defaults; its fit needs y (-1: unlabeled)."""
    options = _applicable(options, ("validation_fraction",))
    from .nn import SemiSupervisedVAE

    settings = dict(seed=seed, progress=False, **({} if epochs is None else {"epochs": epochs}))
    return SemiSupervisedVAE(latent, **{**settings, **options})


for _kind in (
        ModelKind("pca", "elbokit.linear:PCA", _pca, family="linear"),
        ModelKind("ppca", "elbokit.linear:PPCA", _ppca, family="linear"),
        ModelKind("fa", "elbokit.linear:FactorAnalysis", _fa, family="linear"),
        ModelKind("vbpca", "elbokit.vi:VBPCA", _vbpca, family="vi"),
        ModelKind("linear-ae", "elbokit.linear:LinearAutoencoder", _linear_ae,
                  family="linear"),
        ModelKind("vae-linear", "elbokit.nn:VAE", _vae_linear, family="nn",
                  persistence="own", preset_of="vae"),
        ModelKind("vae", "elbokit.nn:VAE", _vae, family="nn", persistence="own"),
        ModelKind("ae", "elbokit.nn:Autoencoder", _ae, family="nn", persistence="own"),
        ModelKind("semisupervised-vae", "elbokit.nn:SemiSupervisedVAE", _semisupervised_vae,
                  family="nn", persistence="own")):
    register_kind(_kind)
del _kind
