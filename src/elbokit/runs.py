"""Fit-and-record: the work behind ``elbokit fit``, ``evaluate`` and ``demo``.

A run directory holds the saved model (``model.json`` + arrays), ``metrics.json``
and ``run.json`` (the resolved settings: data spec, latent size, seed, image shape,
the data's feature and target names, and ``key``: everything that determines the
fit, which ``compare`` matches before it reuses a run). A fit holds a lock on its
run directory (``flock``, :class:`RunLock`) from start to end: a second fit into the same
directory fails at once instead of both "succeeding" with one result lost. A run is
saved as one commit (:mod:`elbokit.persistence.commit`): its four files and
``manifest.json`` (their digests) are written into a staging directory beside it and
swapped in by one rename, so a failed or killed save leaves the previous run whole.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from ._math import bits_per_dim, observed_dims
from .data import DEFAULT_TEST_FRACTION, Dataset
from ._run_keys import data_fingerprint, matching_run, run_key  # noqa: F401  (re-exported)
from ._run_lock import RunLock  # noqa: F401  (the CLI and the tests import it from here)
from ._torchrun import env_rank
from .exceptions import DataError, ModelFileError, ParameterError
from .kinds import build_model, kind_names
from .models import kind_of, save_model
from .protocol import as_model
# MAX_SEED, read_metrics and read_run are also re-exported: the CLI imports them from here
from .persistence import (MAX_SEED, METRICS_FILE,  # noqa: F401
                          MODEL_FILE, RUN_FILE, WEIGHTS_FILE, atomic_write_json, read_json,
                          read_metrics, read_run)
from .persistence.commit import COMMITTED_FILES, STAGE_MARK, clean_stale, new_stage, remove_tree
from ._run_commit import commit_run, discarded
from ._provenance import check_continued, continued_record, write_continued

CLASSICAL_KINDS = kind_names(family="linear")  # derived from elbokit.kinds
EVAL_SEED = 12345  # seed of the fixed binarisation of a binary-pixel VAE's evaluation data
NO_TEST_SET = "no test set (--test-fraction 0): fitted on every row, no held-out metrics"


def make_classical(kind: str, latent: int, *, seed: int = 0, verbose: bool = False, **options):
    """Build an unfitted classical estimator by kind name (:func:`elbokit.kinds.build_model`)."""
    return build_model(kind, latent, seed=seed, verbose=verbose, choices=CLASSICAL_KINDS,
                       **options)


def prepare_out_dir(out: str | os.PathLike, *, overwrite: bool) -> Path:
    """Check the output directory can be written, before any work is done.

    Refuses to replace a saved model unless ``overwrite`` (nothing is touched then), and
    a run directory or a ``checkpoints/`` in it that is a symbolic link (a save replaces
    and removes them: never through a link)."""
    out = Path(out)
    for folder in (out, out / VAE_CHECKPOINTS):
        if folder.is_symlink():
            raise ParameterError(f"{folder} is a symbolic link (to {os.readlink(folder)}); "
                                 "elbokit replaces and deletes the files of a run there: give "
                                 "a real directory as --out")
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
    """Per-sample log-likelihood (for a model without a closed-form one, a VAE, its
    ``score_samples``: the ELBO L_B, one seeded sample per point) on train and test, in
    nats, and bits/dim where the log p is a density of the data as scored
    (:func:`density_note`). A model trained on binarised pixels is scored on the data
    binarised once with ``EVAL_SEED`` (:func:`evaluation_data`), so that
    ``elbokit evaluate`` repeats the figures ``elbokit fit vae`` recorded."""
    model = as_model(model)
    if not model.has_density:  # the Autoencoder: no log p(x)
        return _reconstruction_metrics(model, dataset)
    exact = model.exact_log_likelihood
    binarize = model.binarize
    train, test = evaluation_data(dataset, binarize)
    name = "loglike" if exact else "elbo"
    result = {} if test.shape[0] else {"test_note": NO_TEST_SET}
    kinds = set()
    for split, X in (("train", train), ("test", test)):
        if X.shape[0] == 0:  # --test-fraction 0: no held-out rows, no test metrics
            continue
        value = float(np.mean(model.score_samples(X, **condition_of(model, dataset, split))))
        result[f"{split}_{name}"] = value
        kind = density_kind_of(model, X)
        kinds.add(kind)
        if kind is not None:
            result[f"{split}_bits_per_dim"] = bits_per_dim(value, observed_dims(X))
    result["quantity"] = ("log p(x), nats/sample" if exact else
                          "ELBO (lower bound on log p(x)), nats/sample")
    if not exact:
        result["binarized_evaluation"] = binarize != "none"
    result["bits_per_dim_note"] = density_note(kinds, exact)
    return result


def density_kind_of(model, X: np.ndarray) -> str | None:
    """What the model's log p of the rows X is: "discrete", "continuous", or None (not
    a density of X; the protocol's ``density_kind``); a model with a closed-form
    log-likelihood has a continuous density."""
    return "continuous" if model.exact_log_likelihood else model.density_kind(X)


def density_note(kinds: set, exact: bool) -> str:
    """metrics.json's ``bits_per_dim_note``: what the bits/dim figures are, or why
    there are none."""
    if None in kinds:
        from .nn.likelihoods import NOT_A_DENSITY

        return NOT_A_DENSITY
    value = "-log p(x)" if exact else "-ELBO"
    if "continuous" in kinds:
        return (f"{value} / (d ln 2) of a continuous density of the data as loaded (no "
                "dequantization): not comparable with the bits/dim of discrete data")
    return (f"{value} / (d ln 2) of the probability of the discrete values (8-bit levels, "
            "or binary pixels): comparable with published bits/dim")


def _reconstruction_metrics(model, dataset: Dataset) -> dict:
    """A model without a density (the Autoencoder): its reconstruction loss per sample."""
    result = {f"{split}_reconstruction_error": float(np.mean(model.reconstruction_error(X)))
              for split, X in (("train", dataset.train), ("test", dataset.test)) if len(X)}
    if not len(dataset.test):
        result["test_note"] = NO_TEST_SET
    result["quantity"] = ("reconstruction error per sample (squared error, or Bernoulli "
                          "cross-entropy in nats): not a density, no log p(x)")
    return result


def fit_and_record(model, dataset: Dataset, out: str | os.PathLike, *, spec: str,
                   seed: int = 0, overwrite: bool = False,
                   test_fraction: float = DEFAULT_TEST_FRACTION,
                   data_dir=None, checkpoint: bool = False, resume: bool = False,
                   on_nan: str = "stop", callbacks=None) -> dict | None:
    """Fit ``model`` on ``dataset.train``, save it to ``out`` and write metrics.json and
    run.json (with the run's :func:`run_key`), holding the run directory's lock.

    A model trained in epochs (``"checkpoint_dir"`` in its ``fit_options``: a VAE;
    :func:`_fit_epochs`) with ``checkpoint`` writes a checkpoint each epoch to
    ``out/checkpoints`` (``resume``: continue from it; ``on_nan``, ``callbacks``: see
    ``VAE.fit``, which also holds out its own validation rows) and is refused if it
    diverged on the test rows. Under torchrun the ranks
    other than 0 fit, write nothing and return None."""
    from .data.images import refuse_out_inside

    refuse_out_inside(spec if data_dir is None else Path(data_dir) / spec, out)
    epochs = "checkpoint_dir" in as_model(model).fit_options  # a training loop: _fit_epochs
    params = model.get_params()
    extra = {}
    if dataset.load_options is not None:  # an image folder's resize/crop shape the data
        extra["load_options"] = dataset.load_options
    if dataset.columns is not None:  # the table's columns chosen by name
        extra["columns"] = dataset.columns
    key = run_key(kind_of(model), params, spec=spec, seed=seed, test_fraction=test_fraction,
                  data_dir=data_dir, **extra)
    with RunLock(out) as lock:
        out = prepare_out_dir(out, overwrite=overwrite)
        record = continued_record(key, dataset, spec)  # what it trains on: data, split, shape
        if resume:
            check_continued(out, VAE_CHECKPOINTS, record)
        stage = None
        if env_rank() == 0:  # the writer: under torchrun the other ranks write nothing
            clean_stale(out)  # what a killed save left
            stage = new_stage(out)
        try:
            return _fit_and_commit(model, dataset, out, stage, lock, key=key, extra=extra,
                                   spec=spec, seed=seed, params=params, epochs=epochs,
                                   record=record, checkpoint=checkpoint, resume=resume,
                                   on_nan=on_nan, callbacks=callbacks)
        except BaseException as exc:
            # after the exchange of swap_in ``stage`` is the old run: never removed here
            if stage is None or not os.path.lexists(stage / STAGE_MARK):
                raise
            error = discarded(exc, stage, out)
            remove_tree(stage)
            raise error from None


def _fit_and_commit(model, dataset: Dataset, out: Path, stage: Path | None, lock, *, key,
                    extra, spec, seed, params, epochs, record, checkpoint, resume, on_nan,
                    callbacks) -> dict | None:
    """:func:`fit_and_record`'s work, under the lock: fit, score, write the run into
    ``stage`` and swap it in (:func:`commit_run`)."""
    start = time.perf_counter()
    if epochs:
        # an --overwrite of a saved run trains into the staging directory: the old run
        # keeps its checkpoints until the new one is committed
        replacing = stage is not None and (out / MODEL_FILE).exists() and not resume
        checkpoint_dir = None if not checkpoint else \
            (stage if replacing else out) / VAE_CHECKPOINTS
        if not _fit_epochs_or_clean(model, dataset, checkpoint_dir=checkpoint_dir,
                                    resume=resume, on_nan=on_nan, callbacks=callbacks,
                                    record=record):
            return None
    else:
        model.fit(dataset.train)
    metrics = _fit_metrics(model, dataset, out, time.perf_counter() - start)
    run = _run_record(model, dataset, spec=spec, seed=seed, params=params, key=key)
    if epochs:
        metrics.update(_epoch_metrics(model, dataset))
        run.update(extra, resumed=resume)
    if stage is None:  # a torchrun rank other than 0 (those return before this)
        return metrics
    commit_run(model, stage, out, lock, run=run, metrics=metrics, extra=names_of(dataset))
    return metrics


def _fit_metrics(model, dataset: Dataset, out: Path, seconds: float) -> dict:
    """metrics.json of a fitted model: its scores (finite) and the fit's sizes."""
    metrics = metrics_for(model, dataset)
    check_finite_metrics(metrics, out)
    metrics.update(fit_seconds=seconds, iterations=model.n_iter_,
                   n_train=int(dataset.train.shape[0]), n_test=int(dataset.test.shape[0]),
                   n_features=int(dataset.train.shape[1]))
    return metrics


def _run_record(model, dataset: Dataset, *, spec: str, seed: int, params: dict,
                key: dict) -> dict:
    """run.json of a fit: the resolved settings, the data's shape and names, the key."""
    run = {"kind": kind_of(model), "data": spec, "seed": seed, "latent": latent_of(model),
           "image_shape": list(dataset.image_shape) if dataset.image_shape else None,
           "params": _json_params(params), **record_fields(dataset, key)}
    if dataset.channels != 1:
        run["channels"] = dataset.channels
    if dataset.load_options is not None:
        run["load_options"] = dataset.load_options
    if dataset.columns is not None:  # evaluate and report read the same columns
        run["columns"] = dataset.columns
    return run


def _json_params(params: dict) -> dict:
    """The settings of ``get_params()`` that are plain JSON values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()
            if isinstance(v, (int, float, str, bool, type(None), tuple))}


def model_run(model, extra: dict | None = None) -> dict:
    """The run.json of a model saved outside a fit (``VAE.save`` from Python): what the
    model alone knows (kind, latent size, image shape and channels, settings; the
    feature and target names of ``extra``, the JSON its save keeps) and ``data``:
    null, so that ``report`` draws what needs no data and takes ``--data`` for the rest."""
    params = model.get_params()
    shape = params.get("image_shape")
    seed = params.get("seed")
    extra = extra or {}
    run = {"kind": kind_of(model), "data": None, "latent": latent_of(model),
           "image_shape": [int(s) for s in shape] if shape else None,
           "params": _json_params(params), "key": None,
           "feature_names": _str_list(extra.get("feature_names")),
           "target_names": _str_list(extra.get("target_names"))}
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED:
        run["seed"] = seed
    channels = params.get("channels", 1)
    if isinstance(channels, int) and channels != 1:
        run["channels"] = channels
    return run


def write_model_run(model, directory: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write run.json for ``model`` saved into ``directory`` (:func:`model_run`); a fit
    recorded by :func:`fit_and_record` replaces it with the fit's own afterwards."""
    path = Path(directory) / RUN_FILE
    atomic_write_json(path, model_run(model, extra))
    return path


# --------------------------------------------------------------------------- runs in epochs

class _Started:
    """A training callback, the last of the list: it fires once every other callback
    has started (a tracking backend that cannot start raises before it), and then
    writes what the run trains on into its checkpoint directory (``record``)."""

    def __init__(self, checkpoint_dir=None, record: dict | None = None):
        self.fired, self.checkpoint_dir, self.record = False, checkpoint_dir, record

    def on_train_start(self, model, config, data) -> None:
        self.fired = True
        if self.checkpoint_dir is not None and self.record is not None:
            write_continued(self.checkpoint_dir, self.record)  # what --resume checks

    def on_epoch_end(self, epoch, record, model) -> None:
        pass

    def on_train_end(self, model, history, error=None) -> None:
        pass


def _fit_epochs_or_clean(model, dataset: Dataset, *, checkpoint_dir, callbacks=None,
                         record=None, **options) -> bool:
    """:func:`_fit_epochs`; a fit that fails before its first epoch (a tracking backend
    that cannot start, a check of the training loop) removes the checkpoint directory
    it created, so that a failed start leaves nothing behind. A fit that fails later
    keeps its last good checkpoint (to ``--resume`` from)."""
    import shutil

    fresh = checkpoint_dir is not None and not Path(checkpoint_dir).exists() \
        and env_rank() == 0  # rank 0 writes the checkpoints
    started = _Started(checkpoint_dir, record)
    try:
        return _fit_epochs(model, dataset, checkpoint_dir=checkpoint_dir,
                           callbacks=[*(callbacks or ()), started],
                           **options)
    except BaseException:
        if fresh and not started.fired:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        raise


def _fit_epochs(model, dataset: Dataset, *, checkpoint_dir, resume: bool, on_nan: str,
                callbacks=None) -> bool:
    """Fit a model trained in epochs (a VAE; on the data's column names, so the model
    keeps them); False on the torchrun ranks that write nothing. The VAE holds out its
    own validation rows (its ``validation_fraction``). A fit that diverged on the test
    rows raises (nothing is written)."""
    from .nn import distributed

    y = check_labels_for_condition(dataset) if model.conditional else None
    model.fit(with_names(dataset.train, dataset.feature_names), y,
              checkpoint_dir=checkpoint_dir, resume=resume, on_nan=on_nan,
              callbacks=callbacks)
    main = distributed.is_main()
    distributed.shutdown()  # the end of a torchrun job; nothing to do in one process
    if main and len(dataset.test):  # --test-fraction 0: no held-out rows to check
        model.check_fit(dataset.test, "test", reference=dataset.train,
                        **condition_of(model, dataset, "test"))
    return main


def check_labels_for_condition(dataset: Dataset) -> np.ndarray:
    """The training labels a conditional VAE is fitted on; a clear error for data
    without labels."""
    if dataset.train_labels is None:
        raise DataError(f"{dataset.name or 'the data'} has no class labels, so a VAE cannot be "
                        "conditioned on them (--condition-on labels); use a data set with "
                        "labels (digits, fashion-mnist, wine, ...) or --condition-on none")
    return dataset.train_labels


def condition_of(model, dataset: Dataset, split: str) -> dict:
    """``{"y": labels}`` of the ``split`` ("train" or "test") rows for a conditional
    VAE, else {}: the keyword its scoring methods take."""
    if not as_model(model).conditional:
        return {}
    labels = dataset.train_labels if split == "train" else dataset.test_labels
    if labels is None:
        raise DataError(f"the model is conditioned on class labels, and "
                        f"{dataset.name or 'the data'} has "
                        "none to score it with")
    return {"y": labels}


def _epoch_metrics(model, dataset: Dataset) -> dict:
    """What the metrics.json of a model trained in epochs adds (from its
    ``training_curve()``, one dict per epoch): epochs run, throughput, skipped batches."""
    history = model.training_curve() or []
    seconds = sum(h["seconds"] for h in history)
    n_train = int(dataset.train.shape[0])
    metrics = {"epochs": len(history),
               "images_per_second": n_train * len(history) / seconds if seconds > 0
               else None}
    skipped = [h["skipped_batches"] for h in history if "skipped_batches" in h]
    if skipped:
        metrics["skipped_batches"] = int(sum(skipped))
    return metrics


def with_names(X, names):
    """X as a DataFrame with the data set's column names (so the model records them
    as ``feature_names_in_``), when there are names and pandas is installed; else X."""
    if not names:
        return X
    try:
        import pandas
    except ImportError:
        return X
    return pandas.DataFrame(X, columns=[str(n) for n in names], copy=False)


RUN_FILES = COMMITTED_FILES  # the files of a run, listed in its manifest


def latent_of(model) -> int | None:
    """The latent size of a fitted model (``latent_dim_``; None for none left, a VBPCA
    that switched every component off)."""
    latent = as_model(model).latent_dim_
    return int(latent) if latent else None


def names_of(dataset: Dataset) -> dict:
    """The data's feature and target names (None when it has none), as JSON."""
    return {"feature_names": _str_list(dataset.feature_names),
            "target_names": _str_list(dataset.target_names)}


def record_fields(dataset: Dataset, key: dict | None) -> dict:
    """The fields of run.json beyond the settings: the key and the data's names."""
    return {"key": key, **names_of(dataset)}


def _str_list(names) -> list[str] | None:
    return None if names is None else [str(n) for n in names]


def check_finite_metrics(metrics: dict, out) -> None:
    """A NaN or infinite log-likelihood is never recorded as a success."""
    from .exceptions import TrainingError

    bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
    if bad:
        raise TrainingError(f"the fit into {out} gives non-finite {', '.join(bad)}; nothing "
                            "was saved (check the data's scale, or standardize it)")


VAE_CHECKPOINTS = "checkpoints"  # the checkpoint directory of a `fit vae` run


def image_shape_of(run_dir: str | os.PathLike, n_features: int):
    """The image shape recorded for a run (checked against ``n_features``), or a square
    guess, or None."""
    run_dir = Path(run_dir)
    if (run_dir / RUN_FILE).is_file():
        run = read_run(run_dir)
        shape, channels = run.get("image_shape"), run.get("channels", 1)
        if shape:
            if channels * shape[0] * shape[1] != n_features:
                raise ModelFileError(f"{run_dir / RUN_FILE}: image_shape {shape} does not "
                                     f"fit the model's {n_features} features")
            return tuple(shape) if channels == 1 else (channels, *shape)
    side = int(round(np.sqrt(n_features)))
    return (side, side) if side * side == n_features else None


def recorded_columns(run: dict, run_dir: str | os.PathLike) -> list[str] | None:
    """The columns a run was fitted on when they were chosen by name (run.json's
    ``columns``, checked), so that ``evaluate`` and ``report`` read the same ones; None
    when every column of the data was fitted."""
    columns = run.get("columns")
    if columns is None:
        return None
    if not (isinstance(columns, list) and columns
            and all(isinstance(c, str) and c for c in columns)):
        raise ModelFileError(f"{Path(run_dir) / RUN_FILE}: field 'columns' must be a "
                             f"non-empty list of column names; got {str(columns)[:40]}")
    return columns
