"""The VAE's settings as its two configs: :func:`architecture` and :func:`training`
read the estimator's constructor settings by the config fields' names
(:func:`~elbokit.nn.config.config_kwargs`) and resolve the defaults that depend on
other settings or on the data (the likelihood, encoder, decoder, image_shape,
standardize, the prior's K, the precision, the epochs); :func:`check_combination`
refuses the pairs that cannot work."""

from __future__ import annotations

import copy
import math

import numpy as np

from ..exceptions import ParameterError
from ._estimator import names, sizes
from .._validation import check_choice
from .config import (BUDGET_EPOCHS, DEVICES, LIKELIHOODS, MIN_VARIANCE, MISSING_EPOCHS,
                     MISSING_MIN_VARIANCE, OBJECTIVES, PRIOR_COMPONENTS, ArchitectureConfig,
                     TrainingConfig, auto_epochs, auto_validation, config_kwargs)
from .likelihoods import check_data, resolve
from .objectives.registry import get_objective
from .priors import PRIOR_NAMES, MixtureOfGaussians, Prior, StandardNormal, VampPrior
from .protocols import custom_settings
from .train import resolve_precision

STANDARDIZE = (True, False, "auto")


def resolve_standardize(vae, likelihood: str | None = None) -> bool:
    if vae.standardize not in STANDARDIZE or not isinstance(vae.standardize, (bool, str)):
        raise ParameterError(f"standardize must be True, False or 'auto'; got "
                             f"{vae.standardize!r}")
    if vae.standardize == "auto":
        return (likelihood or vae.likelihood) == "gaussian"
    return vae.standardize  # True with bernoulli fails ArchitectureConfig's check


def resolve_likelihood(vae, X) -> str:
    """The likelihood the VAE fits X (n, d) with: ``vae.likelihood``, or for "auto" the
    one the data call for (:func:`elbokit.nn.likelihoods.resolve`: logistic for 8-bit
    values, nb for counts, else bernoulli); X is checked to suit it (one DataError line)."""
    check_choice(vae.likelihood, "likelihood", ("auto", *LIKELIHOODS), sort=False)
    binarize = vae.binarize if isinstance(vae.binarize, str) else "none"
    likelihood = resolve(vae.likelihood, X, binarize)
    check_data(likelihood, X, "X")
    return likelihood


def architecture(vae, n_features: int, condition_dim: int = 0,
                 classes=None, *, likelihood: str | None = None,
                 missing: bool = False) -> ArchitectureConfig:
    """The settings of :class:`ArchitectureConfig`, with the defaults that depend on
    other settings resolved (encoder, decoder, image_shape, standardize);
    ``likelihood``: the resolved one (:func:`resolve_likelihood`), else the estimator's;
    ``missing``: whether the rows hold missing values (NaN)."""
    settings = config_kwargs(ArchitectureConfig, vae)
    if likelihood is not None:
        settings["likelihood"] = likelihood
    settings.update(custom_settings(vae))
    channels = vae.channels if isinstance(vae.channels, int) and vae.channels > 0 \
        else 1  # a bad value fails its check in the config
    encoder, decoder, image_shape = networks(vae.arch, settings["encoder"],
                                             settings["decoder"], vae.image_shape,
                                             n_features, channels)
    settings.update(
        prior=prior_name(vae.prior), prior_components=prior_components(vae),
        encoder=encoder, decoder=decoder, hidden=sizes(vae.hidden), image_shape=image_shape,
        flow_hidden=sizes(vae.flow_hidden),
        standardize=resolve_standardize(vae, settings["likelihood"]))
    if settings["min_variance"] is None:  # config.MISSING_MIN_VARIANCE
        settings["min_variance"] = MISSING_MIN_VARIANCE if missing and \
            settings["standardize"] else MIN_VARIANCE
    return ArchitectureConfig(n_features=n_features,
                              feature_names=names(getattr(vae, "feature_names_in_", None)),
                              condition_dim=condition_dim, classes=classes, missing=missing,
                              **settings)


def networks(arch, encoder, decoder, image_shape, n_features: int, channels: int = 1):
    """(encoder, decoder, image_shape) with the defaults that follow from the others:
    the decoder is ``arch``'s, the encoder linear for a linear decoder else ``arch``'s,
    and a conv network's image a square of C * side^2 = d values (None if d is not)."""
    decoder = arch if decoder is None else decoder  # a bad value fails its config check
    encoder = ("linear" if decoder == "linear" else arch) if encoder is None else encoder
    if image_shape is None and "conv" in (encoder, decoder):
        side = math.isqrt(n_features // channels)
        image_shape = (side, side) if channels * side * side == n_features else None
    if isinstance(image_shape, (list, np.ndarray)):
        image_shape = tuple(image_shape)
    return encoder, decoder, image_shape  # anything but a pair fails its config check


def prior_components(vae) -> int:
    name = prior_name(vae.prior)
    if not isinstance(name, str):  # a bad prior: its config check names it
        return ArchitectureConfig.prior_components
    if name in PRIOR_COMPONENTS and isinstance(vae.prior, Prior):
        return vae.prior.n_components  # a built-in mixture object: its own K
    if vae.prior_components is None:  # the prior's own default (config.PRIOR_COMPONENTS)
        return PRIOR_COMPONENTS.get(name, ArchitectureConfig.prior_components)
    return vae.prior_components


def prior_name(prior) -> str:
    """What model.json records for the ``prior`` argument: a name as given, the name of
    a built-in prior object, or "custom"."""
    if not isinstance(prior, Prior):
        return prior  # a string (checked by ArchitectureConfig) or a bad value
    builtin = {"standard": StandardNormal, "mog": MixtureOfGaussians, "vamp": VampPrior}
    return prior.name if builtin.get(prior.name) is type(prior) else "custom"


def prior_object(vae, config: ArchitectureConfig) -> Prior | None:
    """A copy of the caller's prior object (checked), or None for a named prior."""
    if isinstance(vae.prior, str):
        return None
    if not isinstance(vae.prior, Prior):
        raise ParameterError(f"prior must be one of {list(PRIOR_NAMES)} or a Prior object; "
                             f"got {vae.prior!r}")
    if vae.prior.latent_dim != config.latent_dim:
        raise ParameterError(f"the prior's latent_dim is {vae.prior.latent_dim}; the "
                             f"VAE's is {config.latent_dim}")
    if getattr(vae.prior, "n_features", config.n_features) != config.n_features:
        raise ParameterError(f"the prior's n_features is {vae.prior.n_features}; the "
                             f"data have {config.n_features}")
    return copy.deepcopy(vae.prior)


def training(vae, *, likelihood: str | None = None, n_rows: int | None = None,
             validation_given: bool = False, missing: bool = False) -> TrainingConfig:
    """The settings of :class:`TrainingConfig`, with the precision, the validation split,
    the patience and the epochs of "auto" resolved: the precision from ``likelihood`` (the
    resolved one, else the estimator's), the split and patience from the ``n_rows`` rows
    given to fit and whether validation rows were given
    (:func:`~elbokit.nn.config.auto_validation`; none when ``n_rows`` is unknown), the
    epochs from the rows fitted (:func:`~elbokit.nn.config.auto_epochs`; MIN_EPOCHS when
    unknown; MISSING_EPOCHS for rows with NaN, ``missing``, under early stopping;
    BUDGET_EPOCHS with a ``max_minutes`` budget, which then ends the fit)."""
    settings = config_kwargs(TrainingConfig, vae)
    batch = settings["batch_size"] if isinstance(settings["batch_size"], int) and \
        settings["batch_size"] > 0 else TrainingConfig.batch_size  # a bad one fails its check
    fraction, patience = auto_validation(n_rows, validation_given, batch) if n_rows \
        else (0.0, 0)
    if isinstance(settings["validation_fraction"], str) and \
            settings["validation_fraction"] == "auto":
        settings["validation_fraction"] = fraction
    if isinstance(settings["patience"], str) and settings["patience"] == "auto":
        held_out = held_out_rows(n_rows or 0, settings["validation_fraction"])
        settings["patience"] = patience if validation_given or held_out else 0
    if isinstance(settings["epochs"], str) and settings["epochs"] == "auto":
        batch = settings["batch_size"]
        fitted = n_rows - held_out_rows(n_rows, settings["validation_fraction"]) \
            if n_rows else None
        settings["epochs"] = auto_epochs(fitted, batch) if fitted and isinstance(batch, int) \
            and batch > 0 else TrainingConfig.epochs  # a bad batch size fails its own check
        if missing and settings["patience"]:  # config.MISSING_EPOCHS: patience decides
            settings["epochs"] = max(settings["epochs"], MISSING_EPOCHS)
        budget = settings["max_minutes"]
        if isinstance(budget, (int, float)) and budget > 0:  # the budget decides
            settings["epochs"] = BUDGET_EPOCHS
    if not isinstance(settings["objective"], str):  # an ELBOEstimator object
        estimator = settings["objective"]
        get_objective(estimator)  # else one line naming the value
        name = getattr(estimator, "name", "custom")
        settings["objective"] = name if name in OBJECTIVES else "custom"
        if name in OBJECTIVES and hasattr(estimator, "settings"):
            settings.update(estimator.settings())  # its M, beta, gradient are recorded
    device = settings["device"] if isinstance(settings["device"], str) and \
        settings["device"] in DEVICES else "cpu"  # a bad device fails its config check
    settings["precision"] = resolve_precision(settings["precision"],
                                              likelihood or vae.likelihood, device)
    return TrainingConfig(**settings)


def held_out_rows(n_rows: int, fraction) -> int:
    """How many of ``n_rows`` rows a ``validation_fraction`` holds out: at least one, and
    at least one row left to fit (0 for 0 or a bad value, which fails its own check)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or \
            not 0 < fraction < 1:
        return 0
    return min(n_rows - 1, max(1, round(fraction * n_rows)))


def split_rows(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitted rows, validation rows): indices of a seeded share ``fraction`` of
    ``n_rows`` rows held out (seeded by the model's seed: a CLI run and a Python fit
    with the same seed hold out the same rows)."""
    order = np.random.default_rng(seed + 7).permutation(n_rows)
    n_val = held_out_rows(n_rows, fraction)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def check_combination(architecture: ArchitectureConfig, training: TrainingConfig, *,
                      validation, conditional: bool, labels: bool) -> None:
    """Refuse the settings that each pass their own checks but not together."""
    if training.binarize != "none" and architecture.likelihood != "bernoulli":
        raise ParameterError("binarize applies to likelihood='bernoulli' only")
    if training.gradient != "standard" and architecture.posterior != "gaussian":
        raise ParameterError(f"gradient={training.gradient!r} needs posterior='gaussian' "
                             "(log q(z|x) at a given z with the flow's parameters held "
                             "fixed needs the flow's inverse)")
    if training.gradient != "standard" and architecture.top_latent_dim:
        raise ParameterError(f"gradient={training.gradient!r} needs a one-layer VAE; use "
                             "gradient='standard' with top_latent_dim > 0")
    if training.binarize != "none" and conditional and not labels:
        raise ParameterError("binarize would binarize the covariates y too; use "
                             "binarize='none' with a covariate matrix")
    if training.patience and validation is None:
        raise ParameterError("early stopping (patience > 0) needs validation data")
    if architecture.missing and training.binarize != "none":
        raise ParameterError("binarize does not apply to data with missing values (NaN); use "
                             "binarize='none'")
    if architecture.missing and architecture.encoder == "custom":
        raise ParameterError("a custom encoder takes x alone, not the mask of missing values "
                             "(NaN) a preset encoder sees; fit it on complete rows or use "
                             "encoder='mlp', 'linear' or 'conv'")
    if training.free_bits and architecture.prior != "standard":
        raise ParameterError("free_bits needs a prior that factorizes over the latent "
                             "dimensions; use prior='standard' or beta / kl_warmup")
