"""The one training loop of the neural models (:func:`train`), in parts:

* :mod:`.loop`: the epochs, one objective ``step()`` per minibatch, validation, early
  stopping, checkpoints, resume, the NaN and Ctrl-C rules;
* :mod:`.optimizer`: Adam, the learning-rate schedule, Polyak averaging;
* :mod:`.precision`: mixed precision, once for both step implementations;
* :mod:`.device`: the device and moving the data there.

The objectives, each with its step, are in :mod:`elbokit.nn.objectives`. The names
below are imported when first used (PEP 562), so ``elbokit.nn.objectives`` can import
:mod:`.precision` without importing the loop, which imports the objectives.
"""

import importlib

_HOMES = {"train": "loop", "TrainingInterrupted": "loop", "ON_NAN": "loop",
          "resolve_device": "device", "as_float_tensor": "device",
          "resolve_precision": "precision", "native_bfloat16": "precision",
          "compute_dtype": "precision", "mixed_precision": "precision",
          "make_optimizer": "optimizer", "optimizer_step": "optimizer",
          "learning_rate": "optimizer", "WeightAverage": "optimizer"}
_OBJECTIVES = {"evaluate_elbo": "evaluate_elbo", "EVAL_BATCH": "EVAL_BATCH"}

__all__ = [*_HOMES, *_OBJECTIVES]


def __getattr__(name):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    if name in _OBJECTIVES:
        return getattr(importlib.import_module("..objectives.elbo", __name__), name)
    raise AttributeError(f"module 'elbokit.nn.train' has no attribute {name!r}")
