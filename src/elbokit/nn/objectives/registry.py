"""The one registry of objectives: :data:`ESTIMATORS` maps each name the training
config and the CLI accept (``objective=``, ``--objective``; ``config.OBJECTIVES`` less
"custom") to its estimator class, and :func:`get_estimator` builds one from a name;
:data:`OBJECTIVES` adds the objectives of the other neural models ("reconstruction",
the Autoencoder's: not a VAE objective), and :func:`get_objective` builds what the
training loop minimises from any of them."""

from __future__ import annotations

from ...exceptions import ParameterError
from .base import ELBOEstimator
from .elbo import ELBOObjective
from .importance_weighted import CIWAE, IWAE, MIWAE, PIWAE
from .reconstruction import Reconstruction
from .single_sample import AnalyticKLELBO, MonteCarloELBO
from .step import TrainingObjective

ESTIMATORS: dict[str, type[ELBOEstimator]] = {
    cls.name: cls for cls in (MonteCarloELBO, AnalyticKLELBO, IWAE, MIWAE, CIWAE, PIWAE)}

#: every training objective by name: the VAE's estimators (trained as their ELBO) and
#: the objectives of models without a density
OBJECTIVES: dict[str, type] = {**ESTIMATORS, Reconstruction.name: Reconstruction}


def get_estimator(estimator, config=None) -> ELBOEstimator:
    """An estimator from its name (a key of :data:`ESTIMATORS`: "a", "b", "iwae",
    "miwae", "ciwae", "piwae"), with the settings of ``config`` (a TrainingConfig:
    gradient, miwae_m, ciwae_beta) if given, else the defaults; or an
    :class:`ELBOEstimator`, returned as it is."""
    if isinstance(estimator, ELBOEstimator):
        return estimator
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise ParameterError(f"estimator must be one of {sorted(ESTIMATORS)} or an "
                             f"ELBOEstimator; got {estimator!r}")
    cls = ESTIMATORS[estimator]
    return cls() if config is None else cls.from_config(config)


def get_objective(objective, config=None) -> TrainingObjective:
    """What the training loop minimises: a :class:`TrainingObjective` as it is,
    "reconstruction" (:class:`Reconstruction`), or the ELBO of an estimator (a name of
    :data:`ESTIMATORS` or an :class:`ELBOEstimator`; see :func:`get_estimator`)."""
    if isinstance(objective, TrainingObjective):
        return objective
    if isinstance(objective, str) and objective == Reconstruction.name:
        return Reconstruction()
    if not isinstance(objective, ELBOEstimator) and not (
            isinstance(objective, str) and objective in ESTIMATORS):
        raise ParameterError(f"objective must be one of {sorted(OBJECTIVES)}, an "
                             f"ELBOEstimator or a TrainingObjective; got {objective!r}")
    return ELBOObjective(get_estimator(objective, config))
