"""The VAE in PyTorch. Torch is imported when one of the names below is first used
(PEP 562), not by ``import elbokit`` nor by ``elbokit.nn.config``, whose dataclasses
declare the VAE's settings and so also the options of the torch-free CLI."""

import importlib

_HOMES = {"ArchitectureConfig": "config", "TrainingConfig": "config",
          "VAENetwork": "model", "ELBOEstimator": "objectives", "MonteCarloELBO": "objectives",
          "AnalyticKLELBO": "objectives", "IWAE": "objectives", "get_estimator": "objectives",
          "MIWAE": "objectives", "CIWAE": "objectives", "PIWAE": "objectives",
          "VAE": "vae", "load_vae": "vae", "Callback": "callbacks",
          "TensorBoardCallback": "callbacks", "MLflowCallback": "callbacks",
          "Autoencoder": "autoencoder", "SemiSupervisedVAE": "semisupervised"}

__all__ = ["VAE", "load_vae", "Autoencoder", "VAENetwork", "ArchitectureConfig",
           "TrainingConfig", "ELBOEstimator", "MonteCarloELBO", "AnalyticKLELBO", "IWAE",
           "get_estimator", "MIWAE", "CIWAE", "PIWAE", "Callback",
           "TensorBoardCallback", "MLflowCallback", "SemiSupervisedVAE"]


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module 'elbokit.nn' has no attribute {name!r}")
