"""Mixed precision, written once for both step implementations (autograd's and the
written-out one of :mod:`elbokit.nn.objectives.fused`): which precision ``"auto"``
means (:func:`resolve_precision`), the matmuls' operand type of a precision
(:func:`compute_dtype`), and for autograd's step the context that puts it in place
(:func:`mixed_precision`). The rule is the same in both: the matmuls take bfloat16
operands; what the networks return, the reparameterised z, the log-densities, the KL,
the loss, the weights, their gradients and Adam's state stay float32."""

from __future__ import annotations

import contextlib

import torch

from ...exceptions import ParameterError
from ..config import PRECISIONS
from .device import resolve_device


def resolve_precision(precision: str, likelihood: str, device: str) -> str:
    """The training precision of ``precision="auto"``: bfloat16 for the Bernoulli
    likelihood (images) on a device that multiplies bfloat16 natively, float32 otherwise.

    Measured (docs/decisions/precision-auto.md): on a 2-core CPU with AVX512-BF16, the
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


def compute_dtype(precision: str):
    """The matmuls' operand type of ``precision``: None for float32 (the parameters'
    own), torch.bfloat16 for mixed precision."""
    return torch.bfloat16 if precision == "bfloat16" else None


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
    flow = getattr(model, "flow", None)  # the AE's network and a VAE without a flow: None
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
