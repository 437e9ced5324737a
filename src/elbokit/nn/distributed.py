"""Data-parallel training under ``torchrun``: one process per device, each working on
its part of every minibatch, gradients averaged by DistributedDataParallel.

A run under ``torchrun --nproc_per_node=N`` ends with the weights of the
single-process run with the same batch size and seed, to float rounding:

* the global minibatch of step t is the same slice of the same seeded permutation;
  rank r takes its contiguous part (every rank holds the data; a memory-mapped file
  is only read where a rank's rows lie);
* the randomness of a step (dynamic binarisation, the reparameterisation noise) is
  drawn for the whole minibatch on every rank from the shared seeded generator and
  sliced, so each row gets the noise it gets in one process;
* each rank's ELBO is scaled by (its rows * N / rows of the minibatch), so that
  DDP's average of the ranks' gradients is the gradient of the minibatch mean.

Rank 0 alone reads and writes files; what it reads or computes (a checkpoint, the
validation ELBO) is broadcast, and an error it meets is raised on every rank. The
process group (gloo on the CPU, NCCL on GPUs) comes from torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

from .._warn import warn
from .._torchrun import VARIABLES, env_rank, env_world_size, stray_variables, torchrun_env
from ..exceptions import ParameterError, TrainingError

RENDEZVOUS_TIMEOUT = 120.0  # seconds for every process of a torchrun job to start


def world_size() -> int:
    """The number of training processes: torchrun's ``WORLD_SIZE`` when its full set of
    variables is present and consistent (see :mod:`elbokit._torchrun`), else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return env_world_size()


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return env_rank()


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or no torchrun)."""
    return rank() == 0


def launched() -> bool:
    """Whether this process is one of several started by torchrun."""
    return world_size() > 1


def local_device(device: torch.device) -> torch.device:
    """Under torchrun, each process of a node takes the GPU of its ``LOCAL_RANK``."""
    if device.type == "cuda" and device.index is None and launched():
        device = torch.device("cuda", torchrun_env().local_rank)
        torch.cuda.set_device(device)
    return device


def init(device: torch.device) -> None:
    """Join torchrun's process group (once per process): NCCL for GPUs, else gloo."""
    stray = stray_variables()
    if stray and not dist.is_initialized():
        warn(f"{', '.join(f'{n}={os.environ[n]}' for n in stray)} set without the "
             f"rest of torchrun's variables ({', '.join(VARIABLES)}): ignored, "
             "training in one process", UserWarning)
    if not launched() or dist.is_initialized():
        return
    if not dist.is_available():
        raise ParameterError("this PyTorch build has no torch.distributed; run one process")
    store = _rendezvous()
    if device.type == "cuda":
        dist.init_process_group("nccl", device_id=device, store=store, rank=env_rank(),
                                world_size=env_world_size())
    else:
        dist.init_process_group("gloo", store=store, rank=env_rank(),
                                world_size=env_world_size())


def rendezvous_timeout() -> float:
    """Seconds the processes of a torchrun job wait for each other to start:
    ``ELBOKIT_RENDEZVOUS_TIMEOUT`` or ``RENDEZVOUS_TIMEOUT`` (torch's own default, 30
    minutes, is also its collectives' and looked like a hang)."""
    text = os.environ.get("ELBOKIT_RENDEZVOUS_TIMEOUT", "").strip()
    if not text:
        return RENDEZVOUS_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise ParameterError(f"ELBOKIT_RENDEZVOUS_TIMEOUT={text[:20]!r} must be a number of "
                             "seconds in (0, 86400]")
    return value


def _rendezvous():
    """The store of torchrun's environment, every process joined within
    :func:`rendezvous_timeout`, else one line naming the address and the count; the
    process group's own timeout (its collectives') stays torch's default."""
    env, timeout = torchrun_env(), rendezvous_timeout()
    try:
        store, _, _ = next(dist.rendezvous("env://", timeout=timedelta(seconds=timeout)))
    except (RuntimeError, ValueError, OSError) as exc:  # DistStoreError, DistNetworkError
        reason = " ".join(str(exc).split("\n")[0].split())[:120]
        raise ParameterError(  # the environment names peers that never come: a setting
            f"the torchrun rendezvous at {env.master_addr}:{env.master_port} did not start "
            f"within {timeout:g} s (RANK={env.rank}, WORLD_SIZE={env.world_size}: {reason}); "
            f"start all {env.world_size} processes (torchrun --nproc_per_node="
            f"{env.world_size} ...), or unset {', '.join(VARIABLES)} to train in one "
            "process") from None
    return store


def shutdown() -> None:
    """Leave the process group (the end of a torchrun job), every rank together: without
    the barrier the rank that left first sometimes aborted at exit ("terminate called
    without an active exception", SIGABRT): 4 of 32 two-process runs on a loaded 2-core
    machine, 0 of 33 with it (2026-12-05)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class Shard:
    """This rank's view of training: its part of each minibatch, the objective wrapped
    in DDP, collective helpers. With one process every method is the identity."""

    def __init__(self, batch_size: int, n_rows: int, generator: torch.Generator):
        self.rank, self.size = rank(), world_size()
        self.generator = generator
        self.start, self.stop, self.total = 0, 0, 0  # rows of the current minibatch
        if self.size == 1:
            return
        if batch_size % self.size:
            raise ParameterError(f"batch_size {batch_size} must be divisible by the number of "
                                 f"processes ({self.size}): each takes batch_size / "
                                 f"{self.size} rows of every minibatch")
        last = n_rows % batch_size
        if 0 < last < self.size:
            raise ParameterError(f"the last minibatch of each epoch has {last} row(s), fewer "
                                 f"than the {self.size} processes; choose a batch size for "
                                 f"which n_rows ({n_rows}) % batch_size is 0 or >= {self.size}")

    @property
    def active(self) -> bool:
        return self.size > 1

    def take(self, x: torch.Tensor) -> torch.Tensor:
        """Rank r's contiguous part of the global minibatch x (b, d)."""
        if not self.active:
            return x
        total = x.shape[0]
        sizes = [total // self.size + (r < total % self.size) for r in range(self.size)]
        self.start = sum(sizes[:self.rank])
        self.stop, self.total = self.start + sizes[self.rank], total
        return x[self.start:self.stop]

    def wrap(self, loss_function, model):
        """``loss_function`` (any arguments; returns per-sample means over this rank's
        rows, one tensor or a tuple) as a callable of the same signature whose gradients
        DDP averages over the ranks; ``loss_function`` itself with one process."""
        if not self.active:
            return loss_function
        device = next(model.parameters()).device
        return torch.nn.parallel.DistributedDataParallel(
            _ShardedLoss(model, loss_function, self),
            device_ids=[device] if device.type == "cuda" else None)

    def average_(self, values: torch.Tensor) -> torch.Tensor:
        """Replace ``values`` by its mean over the ranks, in place."""
        if self.active:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.size
        return values

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank."""
        if not self.active:
            return flag
        device = self.generator.device
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() == 1.0)

    def on_main(self, function):
        """``function()`` run on rank 0, its result given to every rank; an exception
        there is raised on every rank (so no rank waits for a dead one)."""
        if not self.active:
            return function()
        box = [None, None]
        if self.rank == 0:
            try:
                box[0] = function()
            except Exception as exc:  # re-raised below, on every rank
                box[1] = exc
        dist.broadcast_object_list(box, src=0)
        if box[1] is not None:
            raise box[1]
        return box[0]


class _ShardedLoss(torch.nn.Module):
    """A loss on this rank's rows as a module DDP can wrap (``model`` is registered for
    DDP's gradient hooks; the loss function receives it among its arguments). Each
    output, a mean over this rank's rows, is scaled by rows * N / rows of the
    minibatch: the average over ranks is then the mean over the minibatch, and so is
    the average of the gradients that DDP computes."""

    def __init__(self, model, loss_function, shard: Shard):
        super().__init__()
        self.model, self.loss_function, self.shard = model, loss_function, shard

    def forward(self, *args, **kwargs):
        shard = self.shard
        with _SlicedNoise(shard.generator, shard.start, shard.stop, shard.total):
            out = self.loss_function(*args, **kwargs)
        scale = (shard.stop - shard.start) * shard.size / shard.total
        return tuple(t * scale for t in out) if isinstance(out, tuple) else out * scale


class _SlicedNoise(TorchFunctionMode):
    """Inside: ``torch.randn`` with the training generator draws the noise of the
    whole minibatch (rows on the second-to-last axis, as in ``(B, L)`` and
    ``(S, B, L)``) and returns this rank's rows; any other use of the generator is an
    error (it would make the ranks' streams diverge silently)."""

    def __init__(self, generator, start: int, stop: int, total: int):
        super().__init__()
        self.generator, self.start, self.stop, self.total = generator, start, stop, total

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("generator") is not self.generator:
            return func(*args, **kwargs)
        shape = args[0] if len(args) == 1 and not isinstance(args[0], int) else args
        shape = list(shape)
        if func is not torch.randn or len(shape) < 2 or shape[-2] != self.stop - self.start:
            raise TrainingError(f"the objective draws random numbers by {func.__name__} "
                                f"{tuple(shape)}; distributed training can split only "
                                "torch.randn noise of shape (..., rows, L)")
        shape[-2] = self.total
        return func(tuple(shape), **kwargs)[..., self.start:self.stop, :].contiguous()
