"""The training loop: Adam on minibatches sliced from tensors held in memory,
validation ELBO per epoch, early stopping, a checkpoint per epoch, resume.

No globals: :func:`train` takes the model, the data and a :class:`TrainingConfig`
and returns the history. All randomness (the permutation of each epoch, dynamic
binarisation, the reparameterisation noise) comes from one ``torch.Generator``
seeded with ``config.seed``, whose state is checkpointed: a resumed run ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings

import torch
import torch.optim.optimizer as _optim

from ..exceptions import ModelFileError, ParameterError, TrainingError
from . import checkpoint as ckpt
from . import distributed
from .callbacks import Hooks
from .config import PRECISIONS, STOP_BELOW_LR, ArchitectureConfig, TrainingConfig
from .fused import compute_dtype, fused_step
from .objectives import ELBOEstimator, EstimatorB, get_estimator, training_loss
from .resume import check_resume
from .schedules import freeze_gradients

EVAL_BATCH = 4096
CHECK_EVERY = 25  # steps between NaN checks and progress-bar updates
ON_NAN = ("stop", "skip-batch")


def resolve_device(name: str) -> torch.device:
    """The device of ``name``; under torchrun "cuda" means this process's GPU
    (``LOCAL_RANK``)."""
    if name == "auto":  # CUDA, else Apple's MPS, else the CPU
        name = "cuda" if torch.cuda.is_available() else "mps" if _has_mps() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device='cuda' was asked for but no CUDA device is available; "
                             "use device='auto' or 'cpu'")
    if name == "mps" and not _has_mps():
        raise ParameterError("device='mps' was asked for but Apple's MPS is not available; "
                             "use device='auto' or 'cpu'")
    return distributed.local_device(torch.device(name))


def resolve_precision(precision: str, likelihood: str, device: str) -> str:
    """The training precision of ``precision="auto"``: bfloat16 for the Bernoulli
    likelihood (images) on a device that multiplies bfloat16 natively, float32 otherwise.

    Measured (README, "Mixed precision"): on a 2-core CPU with AVX512-BF16, the
    Fashion-MNIST recipe ran 1.37x the epochs in 15 minutes with the same validation ELBO
    per epoch, and its test NLL was 0.39 +- 0.02 nats better at equal time; tables
    (the Gaussian likelihoods) keep float32: their networks are small, so bfloat16 buys
    no time there, and its 8-bit mantissa would blur a decoder mean held to a small noise
    variance."""
    if precision not in ("auto", *PRECISIONS):
        raise ParameterError(f"precision must be one of {['auto', *PRECISIONS]}; got "
                             f"{precision!r}")
    if precision != "auto":
        return precision
    if likelihood != "bernoulli":
        return "float32"
    return "bfloat16" if native_bfloat16(resolve_device(device)) else "float32"


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware: a CUDA GPU that
    supports bfloat16, a CPU whose oneDNN has bfloat16 kernels (AVX512-BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN
            return False
    return False


def _has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


@torch.inference_mode()
def evaluate_elbo(model, X: torch.Tensor, *, estimator: ELBOEstimator | None = None,
                  n_samples: int = 1, seed: int | None = 0) -> torch.Tensor:
    """Per-sample ELBO estimates of X (n, d) in batches, (n,); seeded for repeatability.

    X may live on the host while the model is on a GPU: batches are copied over."""
    estimator = estimator or EstimatorB()
    device = next(model.parameters()).device
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
    out = [estimator(model, X[i:i + EVAL_BATCH].to(device), n_samples, generator)
           for i in range(0, X.shape[0], EVAL_BATCH)]
    return torch.cat(out)


def make_optimizer(model, lr: float) -> torch.optim.Optimizer:
    """Adam; PyTorch's fused kernel (the same update in one pass over the parameters,
    about 10% faster per step for an MLP VAE on the CPU) where the device supports it."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(model.parameters(), lr=lr)


def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``; for PyTorch's fused Adam on the CPU with its default options,
    once its state exists, the same two calls it makes (``_foreach_add_`` of the step counts,
    ``_fused_adam_``) without the Python around them (grouping by device and dtype,
    state look-ups, hooks): about 0.5 ms of a 10 ms step of the benchmark MLP VAE on
    the CPU. The same update, bit for bit (tests/test_fused.py)."""
    group = optimizer.param_groups[0] if len(optimizer.param_groups) == 1 else None
    plain = (type(optimizer) is torch.optim.Adam and group is not None
             and group.get("fused") and not group["amsgrad"] and not group["weight_decay"]
             and not group["maximize"] and not group["capturable"]
             and not group["differentiable"] and not group.get("decoupled_weight_decay")
             and not optimizer._optimizer_step_pre_hooks
             and not optimizer._optimizer_step_post_hooks
             and not _optim._global_optimizer_pre_hooks
             and not _optim._global_optimizer_post_hooks
             and not isinstance(group["lr"], torch.Tensor))
    params = [p for p in group["params"] if p.grad is not None] if plain else []
    state = [optimizer.state.get(p) for p in params]
    devices = {(p.device, p.dtype) for p in params}
    if not params or len(devices) != 1 or params[0].device.type != "cpu" or any(
            not s or s["step"].device != params[0].device for s in state):
        optimizer.step()  # the first step (creates the state), a GPU, or anything else
        return
    steps = [s["step"] for s in state]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in state],
                       [s["exp_avg_sq"] for s in state], [], steps, amsgrad=False,
                       lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=0.0,
                       eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)


class WeightAverage:
    """Polyak averaging (an exponential moving average) of a module's weights:
    after optimiser step t, w_avg <- d_t w_avg + (1 - d_t) w with
    d_t = min(decay, (1 + t) / (10 + t)) (the warm-up of TensorFlow's
    ExponentialMovingAverage, so early averages are not dominated by the random
    start). Buffers (the standardization) are copied as they are. One fused
    ``lerp`` over all parameters per step."""

    def __init__(self, model: torch.nn.Module, decay: float, weights: dict | None = None,
                 updates: int = 0):
        self.decay, self.updates = decay, updates
        self.names = [name for name, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        source = weights if weights is not None else model.state_dict()
        self.weights = {k: v.detach().clone() for k, v in source.items()}
        self._averaged = [self.weights[name] for name in self.names]

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._averaged, [p.detach() for p in self.params], 1.0 - decay)
        self.updates += 1

    def state_dict(self) -> dict:
        """The averaged weights, as the model's state dict (buffers current)."""
        return self.weights


class _LoopState:
    """What the loop carries between epochs besides weights and optimiser."""

    def __init__(self):
        self.epoch = 0
        self.history: list[dict] = []
        self.best_elbo = -math.inf
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
        # -inf (no validation yet) is written as null by persistence.atomic_write_json
        return {"best_elbo": self.best_elbo, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "out_of_time": self.out_of_time}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message names the checkpoint a resumed run starts
    from (the last completed epoch: the interrupted one is redone)."""


class _Run:
    """What a training run works with: the model, its optimiser and random generator,
    the loss of a step (wrapped in DDP under torchrun), where checkpoints go."""

    def __init__(self, model, config: TrainingConfig, architecture: ArchitectureConfig,
                 objective, run_dir, on_nan: str, n_rows: int):
        if on_nan not in ON_NAN:
            raise ParameterError(f"on_nan must be one of {list(ON_NAN)}; got {on_nan!r}")
        self.model, self.config, self.architecture = model, config, architecture
        self.objective = get_estimator(objective or config.objective, config)
        self.run_dir, self.on_nan = run_dir, on_nan
        device = next(model.parameters()).device
        distributed.init(device)
        self.generator = _seeded(device, config.seed)
        self.optimizer = make_optimizer(model, config.lr)
        self.average = WeightAverage(model, config.ema) if config.ema else None
        if config.max_minutes and distributed.world_size() > 1:
            raise ParameterError("max_minutes is not supported under torchrun (each process's "
                                 "clock would set its own learning rate); use epochs")
        self.shard = distributed.Shard(config.batch_size, n_rows, self.generator)
        if self.shard.active and config.free_bits and distributed.is_main():
            warnings.warn("free_bits floors the minibatch-mean KL of each process's share of "
                          "the minibatch: the run differs from a single-process one",
                          UserWarning, stacklevel=4)
        self.loss = training_loss  # wrapped in DDP once the weights are final
        # the written-out step where it covers the model (None: autograd's backward)
        self.fused = fused_step(model, config, self.objective, self.shard.active)
        self.dtype = compute_dtype(config.precision)  # None: float32 throughout
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
    ``epoch``, ``train_elbo``, ``val_elbo`` (nats per sample), ``seconds`` (of the
    epoch's training steps), ``wall_seconds`` (of the whole epoch: its steps, its
    validation, the callbacks and checkpoint write before it)).

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
    run = _Run(model, config, architecture, objective, run_dir, on_nan, len(X))
    if started is not None:
        run.started = started
    state = _start(run, resume)
    run.clock_offset = state.wall_seconds  # the restored epochs'
    run.loss = run.shard.wrap(training_loss, model)
    steps_per_epoch = math.ceil(len(X) / config.batch_size)
    _set_lr(run.optimizer, config, state.epoch * steps_per_epoch, steps_per_epoch,
            run.elapsed())
    X, X_val = _prepare_data(X, validation, config, run.generator.device)
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
            warnings.warn(f"resume=True but {run_dir} holds no checkpoint; training from the "
                          "start", UserWarning, stacklevel=4)
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
    with _progress_bar(config, state.epoch, X.shape[0], show) as bar:
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
                    record["val_elbo"] = run.shard.on_main(lambda: _validate(run, X_val))
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
    """The mean validation ELBO of the weights the run keeps (the average, with EMA)."""
    model, seed = run.model, run.config.seed
    if run.average is None:
        return float(evaluate_elbo(model, X_val, seed=seed).mean())
    current = copy.deepcopy(model.state_dict())
    model.load_state_dict(run.average.state_dict())
    try:
        return float(evaluate_elbo(model, X_val, seed=seed).mean())
    finally:
        model.load_state_dict(current)


def _save(run: _Run, state: _LoopState) -> None:
    """Write the checkpoint of ``state.epoch`` (rank 0); a failed write leaves the
    previous checkpoint in place and says so."""
    if run.run_dir is None:
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
    state.stopped_early = _early_stopping(kept, state, run.config, record, lr)
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
    order = torch.randperm(n, generator=generator, device=device).to(X.device)
    losses = torch.zeros(n_steps, device=device)  # mean -ELBO of each step (over all ranks)
    kept = torch.ones(n_steps, dtype=torch.bool, device=device)  # False: a skipped step
    schedule = config.lr_schedule != "constant" or config.lr_warmup
    binarize = _Binarizer(generator, batch_size, X.shape[1]) \
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
        # the loss may weight the KL (beta, warm-up, free bits); neg_elbo never does
        if run.fused is None:
            with mixed_precision(run.model, run.dtype):
                loss, neg_elbo = run.loss(run.objective, run.model, x, config, generator,
                                          done, n_steps)
        else:  # sets the gradients
            loss, neg_elbo = run.fused(x, generator, done, n_steps)
        if _optimise(run, loss, done):
            losses[step] = neg_elbo.detach()
            if run.average is not None:
                run.average.update()
        else:
            kept[step] = False
        if schedule:
            _set_lr(run.optimizer, config, done + 1, n_steps,
                    seconds + time.perf_counter() - start)
        if (step + 1) % CHECK_EVERY == 0 or step + 1 == n_steps:
            shard.average_(losses[checked:step + 1])  # so a NaN on one rank stops all
            _check_losses(losses, checked, step + 1, epoch, n_steps)
            bar.update(step + 1 - checked)
            checked = step + 1
            if not bar.disable:
                bar.set_postfix(epoch=epoch, loss=f"{float(losses[:checked].mean()):.2f}",
                                refresh=False)
    run.last_steps = (losses, kept)  # for the callbacks, handed over once per epoch
    return _epoch_record(run, epoch, losses, kept, n)


@contextlib.contextmanager
def mixed_precision(model, dtype):
    """Autograd's step with ``precision="bfloat16"``: under ``torch.autocast`` the
    networks' matmuls and convolutions take bfloat16 operands, and what each network
    returns (the encoder, the decoder, each MADE of a flow) is cast back to float32 at
    its boundary (forward hooks, removed on exit), so the reparameterised z, the flow's
    transform and log-determinant, the log-densities, the KL and the loss are computed in
    float32 as with ``precision="float32"``. ``dtype`` None: a no-op."""
    if dtype is None:
        yield
        return
    device = next(model.parameters()).device.type
    flow = getattr(model, "flow", None)
    networks = [model.encoder, model.decoder, *(flow.steps if flow is not None else ())]
    handles = [net.register_forward_hook(_outputs_float32) for net in networks]
    try:
        with torch.autocast(device, dtype=dtype):
            yield
    finally:
        for handle in handles:
            handle.remove()


def _outputs_float32(module, inputs, output):
    """A forward hook: the module's floating-point outputs (a tensor, or a tuple or list
    of them) as float32."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, (tuple, list)):
        items = [_outputs_float32(module, inputs, item) for item in output]
        return type(output)(*items) if hasattr(output, "_fields") else type(output)(items)
    return output


class _Binarizer:
    """Dynamic binarization, x_b ~ Bernoulli(x) per pixel, redrawn for every minibatch.

    On the CPU the uniforms come from numpy's PCG64 (seeded once per epoch from the
    run's torch generator, so a resumed run draws the same pixels), written into one
    preallocated buffer: about 6x faster than ``torch.bernoulli`` at a 100 x 784
    batch, where torch's Mersenne Twister took ~8% of a training step. Elsewhere,
    ``torch.bernoulli`` with the run's generator."""

    def __init__(self, generator: torch.Generator, batch_size: int, n_features: int):
        self.generator = generator
        self.rng = self.buffer = None
        if generator.device.type == "cpu":
            import numpy as np

            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            self.rng = np.random.default_rng(seed)
            self.buffer = np.empty((batch_size, n_features), dtype=np.float32)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.rng is None:
            return torch.bernoulli(x, generator=self.generator)
        uniform = self.buffer[:x.shape[0]]
        self.rng.random(out=uniform, dtype=uniform.dtype)
        # 1.0 where u < x, in the buffer itself (x is float32, as the training data always
        # are; redrawn by the next call, once the step that used this batch is over)
        return torch.from_numpy(uniform).lt_(x)


def _optimise(run: _Run, loss: torch.Tensor, step: int) -> bool:
    """One optimiser step (of the parameters the schedule updates at global step
    ``step``); with on_nan="skip-batch" only where the loss and the gradients are
    finite on every rank (returns False for a skipped step)."""
    skip = run.on_nan == "skip-batch"
    if skip and not run.shard.all_true(bool(torch.isfinite(loss))):
        return False
    if run.fused is None:  # the fused step has set the gradients already
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
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
    record = {"epoch": epoch, "train_elbo": -float((losses * sizes).sum()) / float(sizes.sum())}
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


def learning_rate(config: TrainingConfig, step: int, steps_per_epoch: int,
                  seconds: float = 0.0) -> float:
    """The learning rate after ``step`` optimiser steps and ``seconds`` of the fit:
    a linear warm-up from 0 over ``lr_warmup`` epochs, then constant or cosine-annealed
    to 0 over the rest of the ``epochs`` or of ``max_minutes``, whichever is further
    along. A function of the step (and the clock) alone, so a resumed run needs no
    scheduler state."""
    warm = config.lr_warmup * steps_per_epoch
    if step < warm:
        return config.lr * (step + 1) / warm
    if config.lr_schedule == "constant":
        return config.lr
    progress = (step - warm) / max(config.epochs * steps_per_epoch - warm, 1)
    if config.max_minutes:
        progress = max(progress, seconds / (60.0 * config.max_minutes))
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _set_lr(optimizer, config: TrainingConfig, step: int, steps_per_epoch: int,
            seconds: float = 0.0) -> None:
    lr = learning_rate(config, step, steps_per_epoch, seconds)
    for group in optimizer.param_groups:
        group["lr"] = lr


def _prepare_data(X, validation, config: TrainingConfig, device):
    """Put the data on the device once (minibatches are then slices, no per-sample
    work); binarise the static training set and the validation set with generators of
    their own (so resuming does not depend on them)."""
    X = _to_device(X, device, "the training data")
    X_val = None if validation is None else _to_device(validation, device, "the validation data")
    if config.binarize != "none":
        if config.binarize == "static":
            X = torch.bernoulli(X, generator=_seeded(X.device, config.seed + 1))
        if X_val is not None:
            X_val = torch.bernoulli(X_val, generator=_seeded(X_val.device, config.seed + 2))
    return X, X_val


def _seeded(device, seed: int) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def as_float_tensor(X, device=None) -> torch.Tensor:
    """torch.as_tensor without the warning about read-only arrays (memmaps opened
    read-only): elbokit never writes into its inputs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(X, dtype=torch.float32, device=device)


def _to_device(X, device: torch.device, what: str) -> torch.Tensor:
    """X as a float32 tensor on ``device``; a float32 numpy array (or memmap) is shared,
    not copied, on the CPU. Data too large for the GPU stays in host memory and each
    minibatch is copied over."""
    tensor = as_float_tensor(X)
    if device.type == "cpu":
        return tensor
    try:
        return tensor.to(device)
    except torch.OutOfMemoryError:
        warnings.warn(f"{what} ({tensor.numel() * 4 / 2**30:.1f} GiB) does not fit in {device} "
                      "memory; it stays in host memory and each minibatch is copied over",
                      UserWarning, stacklevel=4)
        return tensor


def _early_stopping(weights: dict, state: _LoopState, config: TrainingConfig,
                   record: dict, lr: float) -> bool:
    """Track the best validation ELBO (and the weights that scored it); True when
    ``patience`` epochs passed without one. Under a decaying schedule (cosine) the
    run ends this way only once the learning rate ``lr`` has fallen to
    ``STOP_BELOW_LR`` of its peak: a plateau at a high step size is the noise floor
    of the stochastic gradient, which the rest of the annealing lowers, so stopping
    there cuts the schedule short (the recipe's 120-minute VampPrior run stopped that
    way at 92 minutes with a third of its peak lr). Under a cosine over the run that
    leaves its last ~20% for patience."""
    if not config.patience or "val_elbo" not in record:
        return False
    if record["val_elbo"] > state.best_elbo:
        state.best_elbo, state.best_epoch = record["val_elbo"], record["epoch"]
        state.best_weights = copy.deepcopy(weights)
        return False
    if config.lr_schedule != "constant" and lr > STOP_BELOW_LR * config.lr:
        return False
    return record["epoch"] - state.best_epoch >= config.patience


def _restore(saved: dict, run: _Run, state: _LoopState) -> None:
    where, model = saved["path"], run.model
    if saved["architecture"] != run.architecture:
        raise ParameterError(f"{where} was written for another architecture "
                             f"({saved['architecture']}); use a new run directory or the same "
                             "model settings")
    check_resume(saved["training"], run.config, where, warn=distributed.is_main())
    ckpt.check_state_dict(model, saved["model"], where)
    model.load_state_dict(saved["model"])
    ckpt.restore_optimizer(run.optimizer, saved["optim"], saved["optimizer"], where)
    ckpt.restore_generator(run.generator, saved["rng"], where)
    state.epoch, state.history = saved["epoch"], saved["history"]
    best = saved["loop_state"].get("best_elbo")
    state.best_elbo = -math.inf if best is None else float(best)
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


def _progress_bar(config: TrainingConfig, done_epochs: int, n: int, show: bool = True):
    from tqdm.auto import tqdm

    steps = math.ceil(n / config.batch_size) * max(config.epochs - done_epochs, 0)
    return tqdm(total=steps, disable=not show, unit="step", desc="fit VAE",
                leave=False, mininterval=0.5)
