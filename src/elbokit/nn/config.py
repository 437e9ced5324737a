"""Configuration of a VAE: the architecture (what the weights mean) and the training
run (how they were fitted), as two dataclasses, saved next to the weights.

Both round-trip through JSON with :meth:`to_dict` / :meth:`from_dict`;
``from_dict`` checks every field's type and range, so a tampered ``model.json``
fails with a :class:`~elbokit.exceptions.ModelFileError` that names the field.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

from ..exceptions import ModelFileError, ParameterError

LR_SCHEDULES = ("constant", "cosine")
LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-fixed")
NETWORKS = ("mlp", "linear", "conv")
OBJECTIVES = ("a", "b", "iwae", "custom")  # "custom": an ELBOEstimator object was given
BINARIZE = ("none", "dynamic", "static")
DEVICES = ("auto", "cpu", "cuda")
POSTERIORS = ("gaussian", "iaf")


@dataclass(frozen=True)
class ArchitectureConfig:
    """What the network is: enough to rebuild the module and load its weights.

    ``decoder="linear"`` makes the model factor analysis with an amortised posterior
    (x = W z + b + noise); its Gaussian variance is then a free per-pixel parameter,
    exactly FA's ``psi``. ``min_variance`` is the floor of the learned Gaussian
    variance, ``var = min_variance + softplus(s(z))``: without it the likelihood of a
    constant pixel runs to infinity. ``sigma`` is the standard deviation of
    ``likelihood="gaussian-fixed"``.

    ``posterior="iaf"`` puts an inverse autoregressive flow on the Gaussian encoder's
    sample (see :mod:`elbokit.nn.flows`): ``flow_steps`` steps, each a MADE network
    with hidden layers ``flow_hidden`` and a context vector of ``flow_context`` numbers
    from the encoder (extra outputs of its last layer).

    ``standardize=True`` puts a fixed per-feature affine map around the networks: the
    encoder sees (x - m) / s, the decoder's likelihood is of that standardized x, and
    every density is turned back into one of x as given by the Jacobian,
    -sum_j log s_j (m and s are buffers, saved with the weights). ``min_variance`` and
    ``sigma`` are then in standardized units. ``feature_names``: the column names
    of the training data (a DataFrame's), or None.
    """

    n_features: int
    latent_dim: int = 20
    likelihood: str = "bernoulli"
    encoder: str = "mlp"
    decoder: str = "mlp"
    hidden: tuple[int, ...] = (400,)
    image_shape: tuple[int, int] | None = None
    min_variance: float = 1e-3
    sigma: float = 1.0
    posterior: str = "gaussian"
    flow_steps: int = 2
    flow_hidden: tuple[int, ...] = (320,)
    flow_context: int = 64
    standardize: bool = False
    feature_names: tuple[str, ...] | None = None

    def __post_init__(self):
        _check_int(self.n_features, "n_features", 1)
        if not isinstance(self.standardize, bool):
            raise ParameterError(f"standardize must be True or False; got {self.standardize!r}")
        if self.standardize and self.likelihood == "bernoulli":
            raise ParameterError("standardize=True does not apply to likelihood='bernoulli' "
                                 "(its data are intensities in [0, 1]); use standardize=False "
                                 "or a Gaussian likelihood")
        if self.feature_names is not None and (
                len(self.feature_names) != self.n_features
                or not all(isinstance(n, str) for n in self.feature_names)):
            raise ParameterError(f"feature_names must be {self.n_features} strings")
        _check_int(self.latent_dim, "latent_dim", 1)
        _check_choice(self.likelihood, "likelihood", LIKELIHOODS)
        _check_choice(self.encoder, "encoder", NETWORKS)
        _check_choice(self.decoder, "decoder", NETWORKS)
        for h in self.hidden:
            _check_int(h, "hidden size", 1)
        _check_positive(self.min_variance, "min_variance")
        _check_positive(self.sigma, "sigma")
        _check_choice(self.posterior, "posterior", POSTERIORS)
        _check_int(self.flow_steps, "flow_steps", 1)
        if not self.flow_hidden:
            raise ParameterError("flow_hidden needs at least one hidden layer size")
        for h in self.flow_hidden:
            _check_int(h, "flow hidden size", 1)
        _check_int(self.flow_context, "flow_context", 0)
        if "conv" in (self.encoder, self.decoder):
            self._check_conv_shape()

    def _check_conv_shape(self):
        shape = self.image_shape
        if shape is None:
            raise ParameterError("a conv encoder/decoder needs image_shape=(height, width); "
                                 "pass it, or use the data set's image_shape")
        if len(shape) != 2 or shape[0] * shape[1] != self.n_features:
            raise ParameterError(f"image_shape {shape} does not match n_features "
                                 f"{self.n_features}")
        if shape[0] % 4 or shape[1] % 4:
            raise ParameterError(f"the conv networks halve the image twice, so height and "
                                 f"width must be multiples of 4; got {tuple(shape)}")

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, obj, where: str = "architecture") -> "ArchitectureConfig":
        return _from_dict(cls, obj, where)


@dataclass(frozen=True)
class TrainingConfig:
    """How the weights are fitted: the estimator of the ELBO, the optimiser, the data
    protocol. ``lr_schedule="cosine"`` anneals the learning rate to 0 over the run
    (per step), which removes the noise floor of the stochastic gradient (a resumed
    run matches an uninterrupted one only with the same ``epochs``). ``objective`` is
    ``"a"`` (L_A), ``"b"`` (L_B) or ``"iwae"``; ``n_samples`` is L, the number of z
    drawn per data point. ``binarize="dynamic"``
    redraws binary pixels from the [0, 1] intensities every epoch (Bernoulli only).
    ``patience`` > 0 turns on early stopping on the validation ELBO.

    The KL term of the training loss (objectives "a" and "b" only) can be weighted:
    ``beta`` multiplies it; ``kl_warmup=N`` raises its weight linearly from 0 to
    ``beta`` over the first N epochs (per step); ``free_bits=lambda`` (nats per latent
    dimension, Kingma et al. 2016) replaces each dimension's batch-mean KL by
    max(lambda, KL_j). These change the gradients only: the ELBO recorded in the
    history is always the true, unweighted bound."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"
    objective: str = "b"
    n_samples: int = 1
    binarize: str = "none"
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    kl_warmup: int = 0
    free_bits: float = 0.0
    beta: float = 1.0

    def __post_init__(self):
        _check_int(self.epochs, "epochs", 1)
        _check_int(self.batch_size, "batch_size", 1)
        _check_positive(self.lr, "lr")
        _check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        _check_choice(self.objective, "objective", OBJECTIVES)
        _check_int(self.n_samples, "n_samples", 1)
        _check_choice(self.binarize, "binarize", BINARIZE)
        _check_int(self.patience, "patience", 0)
        _check_int(self.seed, "seed", 0)
        _check_choice(self.device, "device", DEVICES)
        if not isinstance(self.progress, bool):
            raise ParameterError(f"progress must be True or False; got {self.progress!r}")
        _check_int(self.kl_warmup, "kl_warmup", 0)
        _check_positive(self.beta, "beta")
        if self.free_bits != 0:
            _check_positive(self.free_bits, "free_bits")
        if self.kl_weighted and self.objective not in ("a", "b"):
            raise ParameterError(f"kl_warmup, free_bits and beta weight the KL term of "
                                 f"objectives 'a' and 'b'; objective {self.objective!r} has "
                                 "no separate KL term")

    @property
    def kl_weighted(self) -> bool:
        """Whether the training loss differs from the plain -ELBO."""
        return bool(self.kl_warmup or self.free_bits or self.beta != 1)

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, obj, where: str = "training") -> "TrainingConfig":
        return _from_dict(cls, obj, where)


# --------------------------------------------------------------------------- checks

def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}; got {value}")


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
            or value == float("inf"):
        raise ParameterError(f"{name} must be a finite positive number; got {value!r}")


def _check_choice(value, name, choices):
    if value not in choices:
        raise ParameterError(f"{name} must be one of {list(choices)}; got {value!r}")


# --------------------------------------------------------------------------- JSON round trip

def _to_dict(config) -> dict:
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


# JSON type of each field: the checks below run before __post_init__'s range checks
_INT_TUPLES = {"hidden", "image_shape", "flow_hidden"}
_STR_TUPLES = {"feature_names"}
_FLOATS = {"min_variance", "sigma", "lr", "free_bits", "beta"}


def _from_dict(cls, obj, where: str):
    if not isinstance(obj, dict):
        raise ModelFileError(f"{where} must be a JSON object; got {type(obj).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - set(names))
    if unknown:
        raise ModelFileError(f"{where} has unknown field(s) {unknown}; the file was written by "
                             "another version of elbokit or edited by hand")
    kwargs = {}
    for name, f in names.items():
        if name not in obj:
            if f.default is dataclasses.MISSING:
                raise ModelFileError(f"{where} lacks the required field {name!r}")
            continue
        kwargs[name] = _convert(obj[name], name, where)
    try:
        return cls(**kwargs)
    except ParameterError as exc:
        raise ModelFileError(f"{where}: {exc}") from None


def _convert(value, name, where):
    if name in _STR_TUPLES:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ModelFileError(f"{where}.{name} must be a list of strings; got {value!r}")
        return tuple(value)
    if name in _INT_TUPLES:
        if value is None and name == "image_shape":
            return None
        if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ModelFileError(f"{where}.{name} must be a list of integers; got {value!r}")
        return tuple(value)
    if name in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelFileError(f"{where}.{name} must be a number; got {value!r}")
        return float(value)
    return value  # ints, strings and bools are checked by __post_init__
