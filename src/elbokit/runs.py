"""Fit-and-record: the work behind ``elbokit fit``, ``evaluate`` and ``demo``.

A run directory holds the saved model (``model.json`` + arrays), ``metrics.json``
and ``run.json`` (the resolved settings: data spec, latent size, seed, image shape).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ._math import bits_per_dim
from .data import Dataset
from .exceptions import ParameterError
from .io import MODEL_FILE, atomic_write_json, read_json
from .models import kind_of, save_model

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
CLASSICAL_KINDS = ("pca", "ppca", "fa", "linear-ae")
EVAL_SEED = 12345  # seed of the fixed binarisation of a binary-pixel VAE's evaluation data


def make_classical(kind: str, latent: int, *, seed: int = 0, verbose: bool = False, **options):
    """Build an unfitted classical estimator by kind name."""
    from .linear import PCA, PPCA, FactorAnalysis, LinearAutoencoder

    if kind == "pca":
        return PCA(latent, **options)
    if kind == "ppca":
        return PPCA(latent, random_state=seed, verbose=verbose, **options)
    if kind == "fa":
        return FactorAnalysis(latent, verbose=verbose, **options)
    if kind == "linear-ae":
        return LinearAutoencoder(latent, random_state=seed, verbose=verbose, **options)
    raise ParameterError(f"unknown model {kind!r}; choose from {list(CLASSICAL_KINDS)}")


def prepare_out_dir(out: str | os.PathLike, *, overwrite: bool) -> Path:
    """Check the output directory can be written, before any work is done.

    Refuses to replace a saved model unless ``overwrite`` (nothing is touched then)."""
    out = Path(out)
    if (out / MODEL_FILE).exists() and not overwrite:
        raise ParameterError(f"{out} already holds a saved model; pass --overwrite to replace it "
                             "or choose another --out")
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} exists and is not a directory")
    probe_parent = out if out.exists() else next(p for p in out.parents if p.exists())
    if not os.access(probe_parent, os.W_OK):
        raise ParameterError(f"cannot write to {probe_parent}: permission denied")
    return out


def evaluation_data(dataset: Dataset, binarize: str) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows to score: binarised once, with the fixed seed ``EVAL_SEED``,
    for a model trained on binary pixels (``binarize`` "dynamic" or "static": the
    standard protocol for binarised MNIST); as loaded otherwise."""
    if binarize == "none":
        return dataset.train, dataset.test
    from .data import binarize as binarize_rows

    rng = np.random.default_rng(EVAL_SEED)
    return binarize_rows(dataset.train, rng), binarize_rows(dataset.test, rng)


def metrics_for(model, dataset: Dataset) -> dict:
    """Per-sample log-likelihood (for a VAE the ELBO: L_B, one seeded sample per point)
    on train and test, in nats and bits/dim. A VAE trained on binarised pixels is scored
    on the data binarised once with ``EVAL_SEED`` (:func:`evaluation_data`), so that
    ``elbokit evaluate`` repeats the figures ``elbokit fit vae`` recorded."""
    vae = kind_of(model) == "vae"
    binarize = model.training_.binarize if vae else "none"
    train, test = evaluation_data(dataset, binarize)
    d = train.shape[1]
    name = "elbo" if vae else "loglike"
    result = {}
    for split, X in (("train", train), ("test", test)):
        value = float(np.mean(model.score_samples(X)))
        result[f"{split}_{name}"] = value
        result[f"{split}_bits_per_dim"] = bits_per_dim(value, d)
    if vae:
        result["quantity"] = "ELBO (lower bound on log p(x)), nats/sample"
        result["bits_per_dim_note"] = ("-ELBO / (d ln 2) of the data as scored (no "
                                       "dequantization)")
        result["binarized_evaluation"] = binarize != "none"
    else:
        result["quantity"] = "log p(x), nats/sample"
        result["bits_per_dim_note"] = ("continuous density of the data as loaded (no "
                                       "dequantization): -value / (d ln 2)")
    return result


def fit_and_record(model, dataset: Dataset, out: str | os.PathLike, *, spec: str,
                   seed: int = 0, overwrite: bool = False) -> dict:
    """Fit ``model`` on ``dataset.train``, save it to ``out`` and write metrics.json."""
    out = prepare_out_dir(out, overwrite=overwrite)
    start = time.perf_counter()
    model.fit(dataset.train)
    seconds = time.perf_counter() - start
    metrics = metrics_for(model, dataset)
    iterations = getattr(model, "n_iter_", None)
    if iterations is None and getattr(model, "history_", None):
        iterations = len(model.history_)  # VAE: epochs run
    metrics.update(fit_seconds=seconds, iterations=iterations,
                   n_train=int(dataset.train.shape[0]), n_test=int(dataset.test.shape[0]),
                   n_features=int(dataset.train.shape[1]))
    run = {"kind": kind_of(model), "data": spec, "seed": seed,
           "latent": int(getattr(model, "n_components_", 0)) or None,
           "image_shape": list(dataset.image_shape) if dataset.image_shape else None,
           "params": {k: v for k, v in model.get_params().items()
                      if isinstance(v, (int, float, str, bool, type(None)))}}
    save_model(model, out)
    atomic_write_json(out / RUN_FILE, run)
    atomic_write_json(out / METRICS_FILE, metrics)
    return metrics


def image_shape_of(run_dir: str | os.PathLike, n_features: int):
    """The image shape recorded for a run, or a square guess, or None."""
    run_dir = Path(run_dir)
    for name in (RUN_FILE, METRICS_FILE):
        path = run_dir / name
        if path.is_file():
            shape = read_json(path).get("image_shape")
            if shape:
                return tuple(int(s) for s in shape)
    side = int(round(np.sqrt(n_features)))
    return (side, side) if side * side == n_features else None
