"""The VAE in PyTorch. Importing this package imports torch; ``import elbokit``
does not (it exposes ``elbokit.VAE`` lazily)."""

from .config import ArchitectureConfig, TrainingConfig
from .model import VAEModel, VAENetwork
from .objectives import (AnalyticKLELBO, ELBOEstimator, EstimatorA, EstimatorB, IWAE,
                         MonteCarloELBO, get_estimator)
from .vae import VAE, load_vae

__all__ = ["VAE", "load_vae", "VAENetwork", "VAEModel", "ArchitectureConfig",
           "TrainingConfig", "ELBOEstimator", "MonteCarloELBO", "AnalyticKLELBO", "IWAE",
           "EstimatorA", "EstimatorB", "get_estimator"]
