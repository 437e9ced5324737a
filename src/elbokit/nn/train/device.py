"""Where training runs and how the data get there: the device of a setting
(:func:`resolve_device`), float32 tensors from numpy arrays (:func:`as_float_tensor`),
the data moved to the device once and binarized as the config says
(:func:`prepare_data`, :class:`Binarizer`)."""

from __future__ import annotations

import warnings

import torch

from ..._warn import warn
from ...exceptions import ParameterError
from .. import distributed
from ..config import TrainingConfig
from .._rows import SparseRows


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


def _has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def as_float_tensor(X, device=None) -> torch.Tensor:
    """torch.as_tensor without the warning about read-only arrays (memmaps opened
    read-only): elbokit never writes into its inputs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(X, dtype=torch.float32, device=device)


def to_device(X, device: torch.device, what: str) -> torch.Tensor:
    """X as a float32 tensor on ``device``; a float32 numpy array (or memmap) is shared,
    not copied, on the CPU. Data too large for the GPU stays in host memory and each
    minibatch is copied over. A sparse X (:class:`~elbokit.nn._rows.SparseRows`) stays
    sparse on the host: each minibatch is densified, then copied over."""
    if isinstance(X, SparseRows):
        return X.to(device)
    tensor = as_float_tensor(X)
    if device.type == "cpu":
        return tensor
    try:
        return tensor.to(device)
    except torch.OutOfMemoryError:
        warn(f"{what} ({tensor.numel() * 4 / 2**30:.1f} GiB) does not fit in {device} "
             "memory; it stays in host memory and each minibatch is copied over",
             UserWarning)
        return tensor


def seeded(device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def prepare_data(X, validation, config: TrainingConfig, device):
    """Put the data on the device once (minibatches are then slices, no per-sample
    work); binarise the static training set and the validation set with generators of
    their own (so resuming does not depend on them)."""
    X = to_device(X, device, "the training data")
    X_val = None if validation is None else to_device(validation, device, "the validation data")
    if config.binarize != "none":
        if config.binarize == "static" and isinstance(X, SparseRows):
            raise ParameterError("binarize='static' draws the values of a dense X once; "
                                 "for a sparse X use binarize='dynamic'")
        if config.binarize == "static":
            X = torch.bernoulli(X, generator=seeded(X.device, config.seed + 1))
        if X_val is not None:
            X_val = torch.bernoulli(X_val, generator=seeded(X_val.device, config.seed + 2))
    return X, X_val


class Binarizer:
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
