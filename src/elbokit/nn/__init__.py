"""The VAE in PyTorch. Importing this package imports torch; ``import elbokit``
does not (it exposes ``elbokit.VAE`` lazily)."""

from .config import ArchitectureConfig, TrainingConfig
from .model import VAEModel
from .objectives import ELBOEstimator, EstimatorA, EstimatorB, IWAE, get_estimator
from .vae import VAE, load_vae

__all__ = ["VAE", "load_vae", "VAEModel", "ArchitectureConfig", "TrainingConfig",
           "ELBOEstimator", "EstimatorA", "EstimatorB", "IWAE", "get_estimator"]
