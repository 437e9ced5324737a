"""Training callbacks: watch a VAE's fit in TensorBoard or MLflow, or in your own code.

``VAE(...).fit(X, callbacks=[...])`` calls each callback at three points of
:func:`elbokit.nn.train.train` (on rank 0 only under torchrun):

* :meth:`Callback.on_train_start` ``(model, config, data)`` once, before the first
  epoch (after a resumed checkpoint is restored);
* :meth:`Callback.on_epoch_end` ``(epoch, record, model)`` after each epoch;
* :meth:`Callback.on_train_end` ``(model, history, error)`` once, also when training
  stops on an error or Ctrl-C (``error`` is then that exception).

``model`` is the torch module (:class:`~elbokit.nn.model.VAENetwork`), ``config`` the
:class:`~elbokit.nn.config.TrainingConfig`. ``record`` is the epoch's entry of
``history_`` (``epoch``, ``train_elbo``, ``val_elbo``, ``seconds``) plus ``lr`` (the
learning rate at the epoch's end) and ``step_elbo``, the training ELBO of each step of
the epoch (a numpy array, NaN for a skipped step): the loop keeps per-step numbers in
one tensor on the device and hands them over once per epoch, so a callback costs no
Python call per step.

:class:`TensorBoardCallback` and :class:`MLflowCallback` import their packages when
constructed (``pip install elbokit[tracking]``), never at ``import elbokit``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..exceptions import MissingDependencyError, ParameterError, TrackingError
from .objectives import AnalyticKLELBO, draw_posterior

PROBE_ROWS = 256  # rows on which the reconstruction term and the KL are measured
GRID_IMAGES = 64  # images in each grid of samples / reconstructions (8 x 8)
TRACKING_EXTRA = "pip install elbokit[tracking]"


class Callback:
    """Base class of training callbacks: override any of the three methods.

    Examples
    --------
    >>> from elbokit.nn.callbacks import Callback
    >>> class PrintELBO(Callback):
    ...     def on_epoch_end(self, epoch, record, model):
    ...         print(epoch, round(record["train_elbo"]))
    """

    def on_train_start(self, model, config, data) -> None:
        """Before the first epoch. ``data``: a :class:`TrainingData` (the training and
        validation rows as tensors on the model's device)."""

    def on_epoch_end(self, epoch: int, record: dict, model) -> None:
        """After epoch ``epoch`` (1-based); ``record``: see the module's docstring."""

    def on_train_end(self, model, history: list[dict], error: BaseException | None = None
                     ) -> None:
        """After the last epoch, or when training stops on ``error``."""


class TrainingData:
    """What a callback sees of the data: ``train`` (n, d) and ``validation`` (m, d) or
    None, float32 tensors on the model's device (binarized as the loop's), and
    ``image_shape``, (height, width) or None."""

    def __init__(self, train: torch.Tensor, validation: torch.Tensor | None, image_shape=None):
        self.train, self.validation, self.image_shape = train, validation, image_shape

    def probe(self, rows: int = PROBE_ROWS) -> torch.Tensor:
        """A fixed set of rows to measure on: the first ``rows`` of the validation
        data, else of the training data."""
        source = self.validation if self.validation is not None else self.train
        return source[:rows]


def check_callbacks(callbacks) -> list:
    """The callbacks as a list; each must have the three methods of :class:`Callback`."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not hasattr(callbacks, "__iter__"):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    for cb in callbacks:
        missing = [m for m in ("on_train_start", "on_epoch_end", "on_train_end")
                   if not callable(getattr(cb, m, None))]
        if missing:
            raise ParameterError(f"callback {cb!r} lacks {', '.join(missing)}; subclass "
                                 "elbokit.nn.callbacks.Callback")
    return callbacks


class Hooks:
    """How the training loop calls its callbacks (an empty list costs nothing)."""

    def __init__(self, callbacks):
        self.callbacks = list(callbacks)

    def train_start(self, model, config, X, X_val) -> None:
        if not self.callbacks:
            return
        data = TrainingData(X, X_val, getattr(model.config, "image_shape", None))
        for cb in self.callbacks:
            cb.on_train_start(model, config, data)

    def epoch_end(self, model, record: dict, optimizer, losses, kept) -> None:
        """``losses``, ``kept``: the epoch's per-step -ELBO and whether each step ran."""
        if not self.callbacks:
            return
        steps = -losses.detach().float().cpu().numpy()
        steps[~kept.cpu().numpy()] = np.nan
        record = {**record, "lr": float(optimizer.param_groups[0]["lr"]), "step_elbo": steps}
        for cb in self.callbacks:
            cb.on_epoch_end(record["epoch"], record, model)

    def train_end(self, model, history, error=None) -> None:
        for cb in self.callbacks:
            cb.on_train_end(model, history, error)


# --------------------------------------------------------------------------- measures

@torch.no_grad()
def elbo_terms(model, x: torch.Tensor, seed: int = 0) -> dict:
    """The two terms of the ELBO (L_B) on rows x (B, d), means over the rows (nats):
    ``reconstruction`` E_q[log p(x|z)] (one seeded draw per row), ``kl``
    KL(q(z|x) || p(z)) and ``kl_per_dim`` (L,), in closed form for the Gaussian
    posterior (Kingma & Welling 2014, appendix B; with a flow, see
    :class:`~elbokit.nn.objectives.AnalyticKLELBO`). The model is evaluated in eval
    mode and left in the mode it was in."""
    training = model.training
    model.eval()
    try:
        generator = torch.Generator(device=x.device)
        generator.manual_seed(seed)
        post = draw_posterior(model, x, None, generator)
        reconstruction = model.log_likelihood(x, post.z).mean()
        kl_dims = AnalyticKLELBO().kl_dims(post).mean(0)  # (L,)
    finally:
        model.train(training)
    return {"reconstruction": float(reconstruction), "kl": float(kl_dims.sum()),
            "kl_per_dim": kl_dims.cpu().numpy()}


def image_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """Images (n, C, H, W) tiled into one (C, rows*H, columns*W) array with a 1-pixel
    gap between tiles, scaled together to [0, 1] (so that tiles compare)."""
    n, c, h, w = images.shape
    low, high = float(images.min()), float(images.max())
    images = (images - low) / (high - low) if high > low else np.zeros_like(images)
    rows = math.ceil(n / columns)
    grid = np.zeros((c, rows * (h + 1) - 1, columns * (w + 1) - 1), dtype=np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[:, r * (h + 1):r * (h + 1) + h, col * (w + 1):col * (w + 1) + w] = image
    return grid


def _as_images(x: np.ndarray, image_shape) -> np.ndarray:
    """Rows (n, d) as images (n, C, H, W), C = d / (H W)."""
    h, w = image_shape[-2:]
    return x.reshape(x.shape[0], -1, h, w)


# --------------------------------------------------------------------------- TensorBoard

class TensorBoardCallback(Callback):
    """Write a run's curves (and image grids) for TensorBoard (``tensorboard --logdir``).

    Scalars per epoch (step = epoch): ``elbo/train``, ``elbo/validation``,
    ``elbo_terms/reconstruction`` and ``elbo_terms/kl`` (E_q[log p(x|z)] and
    KL(q || p) on a fixed probe of up to 256 validation rows, else training rows, see
    :func:`elbo_terms`), ``kl_per_dim/NNN`` (one per latent dimension), ``lr`` and
    ``images_per_second``; per optimiser step (step = steps so far):
    ``elbo/train_step``. Every ``images_every`` epochs and at the last one, for image
    data (``image_shape``, default the model's): ``images/samples`` (decoder means of
    64 fixed draws from the prior) and ``images/reconstructions`` (rows of 8 probe
    images, each followed by a row of their reconstructions); ``images_every=0``: none.

    Parameters
    ----------
    log_dir : str or path-like
        Directory of the event files (created).
    images_every : int, default 5
        Epochs between image grids.
    image_shape : tuple of int, optional
        (height, width) of the images when the model does not know it (an MLP model).
    """

    def __init__(self, log_dir, *, images_every: int = 5, image_shape=None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingDependencyError("TensorBoardCallback needs the tensorboard package: "
                                         f"{TRACKING_EXTRA}") from None
        if isinstance(images_every, bool) or not isinstance(images_every, int) \
                or images_every < 0:
            raise ParameterError(f"images_every must be an integer >= 0; got {images_every!r}")
        self.log_dir, self.images_every, self.image_shape = Path(log_dir), images_every, \
            image_shape
        self._writer_class, self.writer = SummaryWriter, None

    def on_train_start(self, model, config, data):
        try:
            self.writer = self._writer_class(str(self.log_dir))
        except OSError as exc:  # a log directory that cannot be made or written
            raise TrackingError(f"TensorBoard: cannot write to {self.log_dir} "
                                f"({exc.strerror or exc})") from None
        self._probe, self._seed, self._epochs = data.probe(), config.seed, config.epochs
        self._rows, self._shape = data.train.shape[0], self.image_shape or data.image_shape
        generator = torch.Generator(device=self._probe.device)
        generator.manual_seed(config.seed)
        self._z = torch.randn((GRID_IMAGES, model.config.latent_dim), generator=generator,
                              device=self._probe.device)  # the same draws every time

    def on_epoch_end(self, epoch, record, model):
        w = self.writer
        w.add_scalar("elbo/train", record["train_elbo"], epoch)
        if "val_elbo" in record:
            w.add_scalar("elbo/validation", record["val_elbo"], epoch)
        terms = elbo_terms(model, self._probe, self._seed)
        w.add_scalar("elbo_terms/reconstruction", terms["reconstruction"], epoch)
        w.add_scalar("elbo_terms/kl", terms["kl"], epoch)
        for j, value in enumerate(terms["kl_per_dim"]):
            w.add_scalar(f"kl_per_dim/{j:03d}", float(value), epoch)
        w.add_scalar("lr", record["lr"], epoch)
        if record.get("seconds", 0) > 0:
            w.add_scalar("images_per_second", self._rows / record["seconds"], epoch)
        steps = record.get("step_elbo")
        if steps is not None:
            first = (epoch - 1) * len(steps)  # optimiser steps before this epoch
            for i in np.flatnonzero(np.isfinite(steps)):
                w.add_scalar("elbo/train_step", float(steps[i]), first + int(i) + 1)
        if self._shape is not None and self.images_every and (
                epoch % self.images_every == 0 or epoch == self._epochs):
            self._images(model, epoch)
        w.flush()

    def _images(self, model, epoch: int) -> None:
        training = model.training
        model.eval()
        try:
            with torch.no_grad():
                samples = model.decoder_mean(self._z).cpu().numpy()
                x = self._probe[:GRID_IMAGES // 2]
                mean = model.encode(x)[0]
                recon = model.decoder_mean(mean).cpu().numpy()
        finally:
            model.train(training)
        x = x.cpu().numpy()
        pairs = np.concatenate([np.stack([x[i:i + 8], recon[i:i + 8]]).reshape(-1, x.shape[1])
                                for i in range(0, len(x), 8)])  # 8 originals, their 8 recons
        self.writer.add_image("images/samples", image_grid(_as_images(samples, self._shape)),
                              epoch)
        self.writer.add_image("images/reconstructions",
                              image_grid(_as_images(pairs, self._shape)), epoch)

    def on_train_end(self, model, history, error=None):
        if self.writer is not None:
            self.writer.close()


# --------------------------------------------------------------------------- MLflow

class MLflowCallback(Callback):
    """Log a run to MLflow: the architecture and training settings as params, per epoch
    the metrics ``train_elbo``, ``val_elbo``, ``reconstruction``, ``kl`` (on the probe
    rows, see :func:`elbo_terms`), ``lr``, ``seconds`` and ``images_per_second``
    (step = epoch); :meth:`log_artifacts` adds files (``elbokit fit vae --mlflow``
    logs the run directory and its report.html). The run ends FINISHED, or FAILED /
    KILLED (Ctrl-C) when training stops early.

    Parameters
    ----------
    tracking_uri : str, optional
        The tracking store: a server's URL, ``sqlite:///mlflow.db``, or a local folder
        (MLflow 3 asks for ``MLFLOW_ALLOW_FILE_STORE=true`` for one). Default: MLflow's
        own (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``).
    experiment : str, default "elbokit"
        The experiment's name (created if absent).
    run_name : str, optional
        The run's name (MLflow picks one by default).

    Attributes
    ----------
    run_id : str or None
        The MLflow run's id, once training has started.
    """

    def __init__(self, tracking_uri: str | os.PathLike | None = None, *,
                 experiment: str = "elbokit", run_name: str | None = None):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MissingDependencyError("MLflowCallback needs the mlflow package: "
                                         f"{TRACKING_EXTRA}") from None
        if isinstance(tracking_uri, os.PathLike) or (
                isinstance(tracking_uri, str) and "://" not in tracking_uri
                and not tracking_uri.startswith("file:")):
            tracking_uri = Path(tracking_uri).absolute().as_uri()  # a local folder
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self._client_class, self.client, self.run_id = MlflowClient, None, None
        self._experiment_id = None

    def connect(self) -> str:
        """Open the tracking store and find (or create) the experiment; returns its id.
        ``elbokit fit vae --mlflow`` calls it before anything is written, so a store
        that cannot be opened fails first; :meth:`on_train_start` calls it otherwise."""
        if self._experiment_id is None:
            self.client = self._call(
                lambda: self._client_class(tracking_uri=self.tracking_uri))
            experiment = self._call(lambda: self.client.get_experiment_by_name(self.experiment))
            self._experiment_id = experiment.experiment_id if experiment is not None else \
                self._call(lambda: self.client.create_experiment(self.experiment))
        return self._experiment_id

    def on_train_start(self, model, config, data):
        experiment_id = self.connect()
        run = self._call(lambda: self.client.create_run(experiment_id, run_name=self.run_name))
        self.run_id = run.info.run_id
        self._probe, self._seed, self._rows = data.probe(), config.seed, data.train.shape[0]
        from mlflow.entities import Param

        settings = {**model.config.to_dict(), **config.to_dict()}
        params = [Param(k, _param_text(v)) for k, v in sorted(settings.items())]
        self._call(lambda: self.client.log_batch(self.run_id, params=params))

    def on_epoch_end(self, epoch, record, model):
        from mlflow.entities import Metric

        values = {k: record[k] for k in ("train_elbo", "val_elbo", "lr", "seconds")
                  if k in record}
        terms = elbo_terms(model, self._probe, self._seed)
        values.update(reconstruction=terms["reconstruction"], kl=terms["kl"])
        if record.get("seconds", 0) > 0:
            values["images_per_second"] = self._rows / record["seconds"]
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, epoch) for k, v in values.items()]
        self._call(lambda: self.client.log_batch(self.run_id, metrics=metrics))

    def on_train_end(self, model, history, error=None):
        if self.run_id is None:
            return
        status = ("FINISHED" if error is None else
                  "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        self._call(lambda: self.client.set_terminated(self.run_id, status))

    def log_artifacts(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Add a file or a directory's files to the run's artifacts (after training)."""
        if self.run_id is None:
            raise ParameterError("log_artifacts needs a run: fit with this callback first")
        path = Path(path)
        if path.is_dir():
            self._call(lambda: self.client.log_artifacts(self.run_id, str(path), artifact_path))
        else:
            self._call(lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def _call(self, action):
        """``action()``, an MLflow failure (a store it cannot open, a server it cannot
        reach) as one line naming the tracking URI."""
        from mlflow.exceptions import MlflowException

        try:
            return action()
        except MlflowException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackingError(f"MLflow ({self.tracking_uri or 'default tracking URI'}): "
                                f"{first}") from None


def _param_text(value, limit: int = 500) -> str:
    """A setting as MLflow's param text (at most ``limit`` characters)."""
    text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
