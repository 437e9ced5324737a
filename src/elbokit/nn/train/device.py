"""Where training runs and how the data get there: the device of a setting
(:func:`resolve_device`), float32 tensors from numpy arrays (:func:`as_float_tensor`),
the data moved to the device once (:func:`to_device`)."""

from __future__ import annotations

import warnings

import torch

from ...exceptions import ParameterError
from .. import distributed


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


def seeded(device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
