"""The one registry of objectives: :data:`ESTIMATORS` maps each name the training
config and the CLI accept (``objective=``, ``--objective``; ``config.OBJECTIVES`` less
"custom") to its estimator class, and :func:`get_estimator` builds one from a name."""

from __future__ import annotations

from ...exceptions import ParameterError
from .base import ELBOEstimator
from .importance_weighted import CIWAE, IWAE, MIWAE, PIWAE
from .single_sample import AnalyticKLELBO, MonteCarloELBO

ESTIMATORS: dict[str, type[ELBOEstimator]] = {
    cls.name: cls for cls in (MonteCarloELBO, AnalyticKLELBO, IWAE, MIWAE, CIWAE, PIWAE)}


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
