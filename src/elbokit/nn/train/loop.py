"""The training loop: Adam on minibatches sliced from tensors held in memory, one
``step()`` per minibatch (the objective's: :mod:`elbokit.nn.objectives.step`), a
validation score per epoch, early stopping, a checkpoint per epoch, resume. The same
loop trains the VAE (its ELBO) and the Autoencoder (``objective="reconstruction"``).

No globals: :func:`train` takes the model, the data and a :class:`TrainingConfig`
and returns the history. All randomness (the permutation of each epoch, dynamic
binarisation, the reparameterisation noise) comes from one ``torch.Generator``
seeded with ``config.seed``, whose state is checkpointed: a resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import time

import torch

from ..._warn import warn
from ...exceptions import ModelFileError, ParameterError, TrainingError
from .. import distributed
from ..callbacks import Hooks
from ..saved import check_state_dict
from .._sizes import check_training_sizes
from ..config import STOP_BELOW_LR, ArchitectureConfig, TrainingConfig
from ..objectives import get_objective
from ..schedules import freeze_gradients
from . import checkpoint as ckpt
from .device import Binarizer, prepare_data, seeded
from .optimizer import WeightAverage, make_optimizer, optimizer_step, set_lr
from .resume import check_resume

CHECK_EVERY = 25  # steps between NaN checks and progress-bar updates
ON_NAN = ("stop", "skip-batch")


class _LoopState:
    """What the loop carries between epochs besides weights and optimiser."""

    def __init__(self):
        self.epoch = 0
        self.history: list[dict] = []
        self.best_score = -math.inf  # the best validation score (the ELBO, or -loss)
        self.best_epoch = 0
        self.stopped_early = False
        self.out_of_time = False
        self.best_weights: dict | None = None

    @property
    def wall_seconds(self) -> float:
        """The fit's wall-clock at the end of the last epoch: each epoch's training,
        validation, callbacks and the checkpoint before it, from the start of the fit
        (of the first fit, when resumed; a checkpoint older than ``wall_seconds`` counts
        its epochs' training time)."""
        return sum(record.get("wall_seconds", record["seconds"]) for record in self.history)

    def to_json(self) -> dict:
        # -inf (no validation yet) is written as null by persistence.atomic_write_json;
        # the field keeps its name of the VAE's checkpoints for every objective
        return {"best_elbo": self.best_score, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "out_of_time": self.out_of_time}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message names the checkpoint a resumed run starts
    from (the last completed epoch: the interrupted one is redone)."""


class _Run:
    """What a training run works with: the model, the objective and its step, the
    optimiser and random generator, where checkpoints go."""

    def __init__(self, model, config: TrainingConfig, architecture: ArchitectureConfig,
                 objective, run_dir, on_nan: str, n_rows: int):
        if on_nan not in ON_NAN:
            raise ParameterError(f"on_nan must be one of {list(ON_NAN)}; got {on_nan!r}")
        self.model, self.config, self.architecture = model, config, architecture
        self.objective = get_objective(objective or config.objective, config)
        self.run_dir, self.on_nan = run_dir, on_nan
        device = next(model.parameters()).device
        distributed.init(device)
        self.generator = seeded(device, config.seed)
        self.optimizer = make_optimizer(model, config.lr)
        self.average = WeightAverage(model, config.ema) if config.ema else None
        if config.max_minutes and distributed.world_size() > 1:
            raise ParameterError("max_minutes is not supported under torchrun (each process's "
                                 "clock would set its own learning rate); use epochs")
        self.shard = distributed.Shard(config.batch_size, n_rows, self.generator)
        if self.shard.active and config.free_bits and distributed.is_main():
            warn("free_bits floors the minibatch-mean KL of each process's share of "
                 "the minibatch: the run differs from a single-process one",
                 UserWarning)
        self.step = None  # the objective's, made once the weights are final (DDP)
        self.saved_epoch: int | None = None  # the epoch of the checkpoint on disk
        self.save_seconds = 0.0  # how long the last checkpoint took to write
        self.saved_at = 0.0  # the clock when it was written (or training began)
        self.started = time.perf_counter()  # the clock of max_minutes (see train)
        self.clock_offset = 0.0  # the wall-clock of the epochs restored from a checkpoint

    def elapsed(self) -> float:
        """Seconds of the fit's wall-clock so far, the restored epochs' included."""
        return self.clock_offset + time.perf_counter() - self.started


def train(model, X, config: TrainingConfig, architecture: ArchitectureConfig, *,
          validation=None, objective=None, run_dir=None, resume: bool = False,
          on_nan: str = "stop", callbacks=(), started: float | None = None) -> list[dict]:
    """Fit ``model`` in place on X (n, d) and return the history (one dict per epoch:
    ``epoch``, ``train_elbo``, ``val_elbo`` (nats per sample; ``train_loss``,
    ``val_loss`` for ``objective="reconstruction"``), ``seconds`` (of the epoch's
    training steps), ``wall_seconds`` (of the whole epoch: its steps, its validation,
    the callbacks and checkpoint write before it)).

    ``objective``: a name of :data:`elbokit.nn.objectives.OBJECTIVES`, an
    :class:`~elbokit.nn.objectives.ELBOEstimator` or a
    :class:`~elbokit.nn.objectives.TrainingObjective` (default: ``config.objective``).
    The Autoencoder's network trains with ``objective="reconstruction"``.

    ``started``: the ``time.perf_counter()`` at which the fit began (default: now);
    ``config.max_minutes`` budgets the wall-clock from then, and a run stops before an
    epoch that, as long as the last one and its checkpoint write, would end past it.

    ``run_dir``: a checkpoint is written there before the first epoch and after each
    one (rank 0 only under torchrun); the directory is checked for write access and
    free space first. ``on_nan``: ``"stop"`` raises :class:`TrainingError` at a NaN/inf
    loss, keeping the last good epoch's weights and checkpoint; ``"skip-batch"`` skips
    each step whose loss or gradient is not finite and records the count per epoch as
    ``skipped_batches``. Ctrl-C raises :class:`TrainingInterrupted` with the weights of
    the last completed epoch, whose checkpoint is on disk. Under ``torchrun`` the
    processes share each minibatch (see :mod:`elbokit.nn.distributed`). ``callbacks``:
    :class:`~elbokit.nn.callbacks.Callback` objects, called on rank 0 only."""
    check_training_sizes(architecture, config, len(X), vae=hasattr(model, "prior"),
                         weights=sum(p.numel() for p in model.parameters()) * 4,
                         device=next(model.parameters()).device)
    run = _Run(model, config, architecture, objective, run_dir, on_nan, len(X))
    if started is not None:
        run.started = started
    state = _start(run, resume)
    run.clock_offset = state.wall_seconds  # the restored epochs'
    run.step = run.objective.make_step(model, config, run.shard)
    steps_per_epoch = math.ceil(len(X) / config.batch_size)
    set_lr(run.optimizer, config, state.epoch * steps_per_epoch, steps_per_epoch,
           run.elapsed())
    X, X_val = prepare_data(X, validation, config, run.generator.device)
    hooks = Hooks(callbacks if distributed.is_main() else ())
    hooks.train_start(model, config, X, X_val)
    run.saved_at = run.elapsed()  # the next epoch's work starts here
    try:
        _epochs(run, state, X, X_val, hooks)
    except BaseException as exc:
        hooks.train_end(model, state.history, exc)
        raise
    if config.patience and state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    elif run.average is not None:
        model.load_state_dict(run.average.state_dict())
    hooks.train_end(model, state.history)
    return state.history


def _start(run: _Run, resume: bool) -> _LoopState:
    """Check the run directory, restore the checkpoint or write that of epoch 0 (so the
    directory is loadable from the start)."""
    state, run_dir = _LoopState(), run.run_dir
    if run_dir is not None:
        size = ckpt.checkpoint_bytes(run.model, with_best=bool(run.config.patience),
                                     with_ema=run.average is not None)
        run.shard.on_main(lambda: ckpt.check_writable(run_dir, size))
    saved = None
    if resume:
        saved = run.shard.on_main(
            lambda: ckpt.load_checkpoint(run_dir) if ckpt.has_checkpoint(run_dir) else None)
        if saved is None and distributed.is_main():
            warn(f"resume=True but {run_dir} holds no checkpoint; training from the "
                 "start", UserWarning)
    if saved is not None:
        _restore(saved, run, state)
        run.saved_epoch = state.epoch
    else:
        _save(run, state)
    return state


def _epochs(run: _Run, state: _LoopState, X, X_val, hooks: Hooks) -> None:
    model, config = run.model, run.config
    last_good = copy.deepcopy(model.state_dict())
    last_epoch = state.epoch if state.stopped_early or state.out_of_time else config.epochs
    show = config.progress and distributed.is_main()
    with _progress_bar(config, state.epoch, X.shape[0], show, run.objective.fits) as bar:
        try:
            for epoch in range(state.epoch + 1, last_epoch + 1):
                start = time.perf_counter()
                try:
                    record = _run_epoch(run, X, epoch, bar, run.elapsed())
                except TrainingError as exc:
                    model.load_state_dict(last_good)
                    raise _stopped(exc, state.epoch, run) from None
                record["seconds"] = time.perf_counter() - start
                if X_val is not None:
                    name = f"val_{run.objective.metric}"
                    record[name] = run.shard.on_main(lambda: _validate(run, X_val))
                    bar.show(**{name: record[name]})
                record["wall_seconds"] = run.elapsed() - state.wall_seconds
                _end_epoch(run, state, record)
                last_good = copy.deepcopy(model.state_dict())
                _save(run, state)
                hooks.epoch_end(model, record, run.optimizer, *run.last_steps)
                if state.stopped_early or state.out_of_time:
                    break
        except KeyboardInterrupt:
            model.load_state_dict(last_good)
            raise _interrupted(run) from None


def _validate(run: _Run, X_val) -> float:
    """The objective's validation score of the weights the run keeps (the average,
    with EMA)."""
    model, seed = run.model, run.config.seed
    if run.average is None:
        return run.objective.validate(model, X_val, seed)
    current = copy.deepcopy(model.state_dict())
    model.load_state_dict(run.average.state_dict())
    try:
        return run.objective.validate(model, X_val, seed)
    finally:
        model.load_state_dict(current)


def _save(run: _Run, state: _LoopState) -> None:
    """Write the checkpoint of ``state.epoch`` (rank 0); a failed write leaves the
    previous checkpoint in place and says so."""
    if run.run_dir is None:  # nothing to write: the next epoch's work starts here
        run.saved_at = run.elapsed()
        return

    def write():
        start = time.perf_counter()
        try:
            ckpt.save_checkpoint(run.run_dir, model=run.model, optimizer=run.optimizer,
                                 generator=run.generator, architecture=run.architecture,
                                 training=run.config, epoch=state.epoch,
                                 history=state.history, loop_state=_loop_json(run, state),
                                 best_weights=state.best_weights,
                                 ema_weights=None if run.average is None else
                                 run.average.state_dict())
        except OSError as exc:
            kept = ("no checkpoint was written" if run.saved_epoch is None else
                    f"the checkpoint of epoch {run.saved_epoch} is kept")
            raise TrainingError(f"cannot write the checkpoint of epoch {state.epoch} to "
                                f"{run.run_dir} ({exc}); {kept}") from None
        run.save_seconds = time.perf_counter() - start

    run.shard.on_main(write)
    run.saved_epoch, run.saved_at = state.epoch, run.elapsed()


def _loop_json(run: _Run, state: _LoopState) -> dict:
    out = state.to_json()
    if run.average is not None:
        out["ema_updates"] = run.average.updates
    return out


def _stopped(exc: TrainingError, good_epoch: int, run: _Run) -> TrainingError:
    """The error for a NaN/inf loss, saying which weights survive."""
    kept = (f"the last good checkpoint (epoch {run.saved_epoch}) is kept in {run.run_dir}"
            if run.saved_epoch is not None else
            f"the model keeps the weights of epoch {good_epoch}")
    return TrainingError(f"{exc}; {kept}. Lower the learning rate (lr={run.config.lr}), "
                         "check the data, or pass on_nan='skip-batch'")


def _interrupted(run: _Run) -> TrainingInterrupted:
    """The Ctrl-C message, naming the checkpoint on disk (read back: the signal may
    have landed after a checkpoint was committed but before the loop noted it)."""
    saved = run.saved_epoch
    if run.run_dir is not None and distributed.is_main():
        saved = ckpt.checkpoint_epoch(run.run_dir)
    if saved is None:
        return TrainingInterrupted("training interrupted; no checkpoint directory was given, "
                                   "nothing is saved")
    return TrainingInterrupted(f"training interrupted; the checkpoint of epoch {saved} is in "
                               f"{run.run_dir}: run the same command with --resume "
                               f"(resume=True) to continue from epoch {saved + 1}")


def _end_epoch(run: _Run, state: _LoopState, record: dict) -> None:
    state.epoch = record["epoch"]
    state.history.append(record)
    kept = run.model.state_dict() if run.average is None else run.average.state_dict()
    lr = run.optimizer.param_groups[0]["lr"]
    state.stopped_early = _early_stopping(kept, state, run, record, lr)
    budget = 60.0 * run.config.max_minutes
    # stop when another epoch would end the fit past the budget: this epoch's checkpoint,
    # then one as long as this one (its steps, validation and the callbacks before it,
    # since the last checkpoint) and its checkpoint
    now = run.elapsed()
    epoch_seconds = now - run.saved_at
    state.out_of_time = bool(budget) and now + epoch_seconds + 2 * run.save_seconds > budget


def _run_epoch(run: _Run, X, epoch: int, bar, seconds: float) -> dict:
    """One pass over a seeded permutation of X; returns the epoch's record (the mean
    training ELBO; the number of skipped steps with on_nan="skip-batch"). ``seconds``:
    the fit's wall-clock before this epoch (for a time-based learning-rate schedule).

    Losses go to a tensor on the device and are checked for NaN/inf every
    ``CHECK_EVERY`` steps (no per-step host sync on a GPU); the error names the first
    bad step, and the caller restores the last good weights."""
    config, generator, shard = run.config, run.generator, run.shard
    n, batch_size = X.shape[0], config.batch_size
    n_steps = math.ceil(n / batch_size)
    device = generator.device  # the model's
    order = _epoch_order(run, X).to(X.device)
    losses = torch.zeros(n_steps, device=device)  # mean value of each step (over all ranks)
    kept = torch.ones(n_steps, dtype=torch.bool, device=device)  # False: a skipped step
    schedule = config.lr_schedule != "constant" or config.lr_warmup
    binarize = Binarizer(generator, batch_size, X.shape[1]) \
        if config.binarize == "dynamic" else None
    start = time.perf_counter()
    checked = 0
    for step in range(n_steps):
        # index_select: the same rows, ~2x faster than X[idx] for a (100, 784) batch
        x = X.index_select(0, order[step * batch_size:(step + 1) * batch_size]).to(device)
        if binarize is not None:
            x = binarize(x)
        x = shard.take(x)  # this process's rows of the minibatch (all, without torchrun)
        done = (epoch - 1) * n_steps + step  # optimiser steps before this one
        # sets the gradients; the loss may weight the KL (beta, warm-up, free bits), the
        # recorded value (-ELBO, or the reconstruction error) never does
        loss, value = run.step(x, generator, done, n_steps)
        if _optimise(run, loss, done):
            losses[step] = value
            if run.average is not None:
                run.average.update()
        else:
            kept[step] = False
        if schedule:
            set_lr(run.optimizer, config, done + 1, n_steps,
                    seconds + time.perf_counter() - start)
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == n_steps:
            shard.average_(losses[checked:step + 1])  # so a NaN on one rank stops all
            _check_losses(losses, checked, step + 1, epoch, n_steps)
            done_steps, checked = step + 1 - checked, step + 1
            if bar.disable:
                bar.steps(done_steps)
            else:  # the epoch running and its score so far, set before the bar redraws
                so_far = run.objective.recorded(float(losses[:checked].mean()))
                bar.steps(done_steps, epoch=epoch, **{f"train_{run.objective.metric}": so_far})
    run.last_steps = (losses, kept)  # for the callbacks, handed over once per epoch
    return _epoch_record(run, epoch, losses, kept, n)


def _epoch_order(run: _Run, X) -> torch.Tensor:
    """The epoch's row order (n,), sliced into minibatches of ``batch_size``: a seeded
    permutation, or the objective's ``batch_order(X, batch_size, generator)`` where it
    has one (M2's puts labeled rows into every minibatch,
    :class:`~elbokit.nn.objectives.semisupervised.SemiSupervisedObjective`)."""
    order = getattr(run.objective, "batch_order", None)
    if order is None:
        return torch.randperm(X.shape[0], generator=run.generator, device=run.generator.device)
    return order(X, run.config.batch_size, run.generator)


def _optimise(run: _Run, loss: torch.Tensor, step: int) -> bool:
    """One optimiser step with the gradients the objective's step set (of the parameters
    the schedule updates at global step ``step``); with on_nan="skip-batch" only where
    the loss and the gradients are finite on every rank (returns False for a skipped
    step)."""
    skip = run.on_nan == "skip-batch"
    if skip and not run.shard.all_true(bool(torch.isfinite(loss))):
        return False
    freeze_gradients(run.model, run.config, step)
    if skip and not all(bool(torch.isfinite(p.grad).all()) for group in
                        run.optimizer.param_groups for p in group["params"]
                        if p.grad is not None):  # averaged by DDP: alike on every rank
        return False
    optimizer_step(run.optimizer)
    return True


def _epoch_record(run: _Run, epoch: int, losses, kept, n: int) -> dict:
    n_steps, batch_size = losses.shape[0], run.config.batch_size
    sizes = torch.full((n_steps,), float(batch_size), device=losses.device)
    sizes[-1] = n - (n_steps - 1) * batch_size  # the last batch may be smaller
    sizes *= kept
    if not bool(kept.any()):
        raise TrainingError(f"every step of epoch {epoch} had a NaN/inf loss or gradient "
                            "and was skipped")
    mean = float((losses * sizes).sum()) / float(sizes.sum())
    record = {"epoch": epoch, f"train_{run.objective.metric}": run.objective.recorded(mean)}
    if run.on_nan == "skip-batch":
        record["skipped_batches"] = int((~kept).sum())
    return record


def _check_losses(losses, start, stop, epoch, n_steps) -> None:
    window = losses[start:stop]
    finite = torch.isfinite(window)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise TrainingError(f"the loss became {float(window[first])} at epoch {epoch}, step "
                            f"{start + first + 1} of {n_steps}")


def _early_stopping(weights: dict, state: _LoopState, run: _Run, record: dict,
                   lr: float) -> bool:
    """Track the best validation score (the ELBO; minus the loss of a reconstruction
    objective) and the weights that scored it; True when
    ``patience`` epochs passed without one. Under a decaying schedule (cosine) the
    run ends this way only once the learning rate ``lr`` has fallen to
    ``STOP_BELOW_LR`` of its peak: a plateau at a high step size is the noise floor
    of the stochastic gradient, which the rest of the annealing lowers, so stopping
    there cuts the schedule short (the recipe's 120-minute VampPrior run stopped that
    way at 92 minutes with a third of its peak lr). Under a cosine over the run that
    leaves its last ~20% for patience."""
    config, key = run.config, f"val_{run.objective.metric}"
    if not config.patience or key not in record:
        return False
    score = run.objective.score(record[key])
    if score > state.best_score:
        state.best_score, state.best_epoch = score, record["epoch"]
        state.best_weights = copy.deepcopy(weights)
        return False
    if config.lr_schedule != "constant" and lr > STOP_BELOW_LR * config.lr:
        return False
    return record["epoch"] - state.best_epoch >= config.patience


def _restore(saved: dict, run: _Run, state: _LoopState) -> None:
    where, model = saved["path"], run.model
    if saved["architecture"] != run.architecture:
        import dataclasses

        changed = [f"{f.name} {getattr(saved['architecture'], f.name)!r} (the checkpoint's) "
                   f"vs {getattr(run.architecture, f.name)!r}"
                   for f in dataclasses.fields(run.architecture)
                   if getattr(saved["architecture"], f.name) != getattr(run.architecture, f.name)]
        raise ParameterError(f"{where} was written for another architecture "
                             f"({'; '.join(changed)[:300]}); use a new run directory or the "
                             "same model settings")
    check_resume(saved["training"], run.config, where, warn=distributed.is_main())
    check_state_dict(model, saved["model"], where)
    model.load_state_dict(saved["model"])
    ckpt.restore_optimizer(run.optimizer, saved["optim"], saved["optimizer"], where)
    ckpt.restore_generator(run.generator, saved["rng"], where)
    state.epoch, state.history = saved["epoch"], saved["history"]
    best = saved["loop_state"].get("best_elbo")
    state.best_score = -math.inf if best is None else float(best)
    state.best_epoch = int(saved["loop_state"].get("best_epoch", 0))
    state.stopped_early = saved["loop_state"].get("stopped_early") is True
    state.out_of_time = saved["loop_state"].get("out_of_time") is True
    state.best_weights = saved["best"]
    if run.average is not None:
        if saved["ema"] is None:
            raise ParameterError(f"{where} holds no averaged weights: it was trained without "
                                 "ema; resume with the same ema setting or a new directory")
        updates = saved["loop_state"].get("ema_updates", 0)
        if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
            raise ModelFileError(f"{where}: loop_state.ema_updates must be an integer >= 0; "
                                 f"got {str(updates)[:40]}")
        run.average = WeightAverage(model, run.config.ema, saved["ema"], updates)


def _progress_bar(config: TrainingConfig, done_epochs: int, n: int, show: bool = True,
                  fits: str = "VAE"):
    from ...progress import TrainingBar

    """The bar of the steps to come; under a ``max_minutes`` budget, which then ends the
    fit more often than the epochs do, no total (no ETA of epochs that will not run)."""
    if config.max_minutes:
        return TrainingBar(None, f"fit {fits} ({config.max_minutes:g} min)", show)
    steps = math.ceil(n / config.batch_size) * max(config.epochs - done_epochs, 0)
    return TrainingBar(steps, f"fit {fits}", show)