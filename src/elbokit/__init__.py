"""elbokit: latent-variable models fitted by maximizing the evidence lower bound.

The classical models (numpy/scipy) import eagerly; the VAE (PyTorch) is imported
on first access to ``elbokit.VAE``, so ``import elbokit`` never imports torch.
"""

from . import data
from .exceptions import (ConvergenceWarning, DataError, DataFileNotFoundError, ElbokitError,
                         ModelFileError, ParameterError, TrainingError)
from .linear import PCA, PPCA, FactorAnalysis, LinearAutoencoder
from .models import load_model, save_model

try:  # the installed distribution's version: pyproject.toml is its one source
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("elbokit")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "PCA", "PPCA", "FactorAnalysis", "LinearAutoencoder", "VAE", "VBPCA", "Autoencoder",
    "SemiSupervisedVAE",
    "load_model", "save_model", "data",
    "ElbokitError", "DataError", "DataFileNotFoundError", "ParameterError",
    "ModelFileError", "TrainingError", "ConvergenceWarning",
]


def __getattr__(name):
    if name == "VAE":
        from .nn import VAE

        return VAE
    if name == "Autoencoder":
        from .nn import Autoencoder

        return Autoencoder
    if name == "SemiSupervisedVAE":
        from .nn import SemiSupervisedVAE

        return SemiSupervisedVAE
    if name == "VBPCA":
        from .vi import VBPCA

        return VBPCA
    raise AttributeError(f"module 'elbokit' has no attribute {name!r}")
