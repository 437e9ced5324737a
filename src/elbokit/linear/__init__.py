"""Linear-Gaussian models (numpy and scipy only; no torch)."""

from .factor_analysis import FactorAnalysis
from .linear_autoencoder import LinearAutoencoder
from .pca import PCA
from .ppca import PPCA

__all__ = ["PCA", "PPCA", "FactorAnalysis", "LinearAutoencoder"]
