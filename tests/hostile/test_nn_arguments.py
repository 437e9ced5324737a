"""Bad arguments of the neural estimators (issue 31): every constructor argument of
:class:`~elbokit.nn.VAE` and :class:`~elbokit.nn.Autoencoder`, as the config
dataclasses declare it (its kind, minimum, choices), fed wrong types, values below its
range, NaN, infinities, strings and sizes beyond memory, and the arguments of
``sample``, ``encode``, ``elbo``, ``kl_to_prior``, ``log_likelihood_samples``,
``posterior_samples`` and ``prior_moments``: each ends in one line of a ParameterError
or DataError naming the argument and the value, at ``fit`` on a 20 x 4 table before any
training (or at the call), never a TypeError, RuntimeError or OverflowError of torch or
numpy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from elbokit.exceptions import DataError, ParameterError
from elbokit.nn import VAE, Autoencoder
from elbokit.nn._settings import _kind, estimator_default
from elbokit.nn.config import autoencoder_settings, estimator_settings

NAN, INF, HUGE = math.nan, math.inf, 10**12
# the bad values of each kind of setting (``_settings._KINDS``); a value below the
# declared minimum and, for sizes, one beyond any memory are added per field
BAD_BY_KIND = {
    "int": [2.5, "x", None, NAN, INF, True, [1]],
    "float": ["x", None, NAN, INF, -INF, [1]],
    "str": ["x", 1, None, [1], {}, ""],
    "bool": ["yes", 1, None, [1]],
    "ints": [2.5, 0, "x", (0,), (2.5,), (-1,), (True,), [NAN]],
}
BAD_BY_KIND["pair"] = [*BAD_BY_KIND["ints"], (), (8,), (8, 8, 8)]  # image_shape: (h, w)
SIZES = {"latent_dim", "hidden", "n_samples"}  # bounded by memory: 10**12 is refused


def _bad_values(field) -> list:
    kind, meta, name = _kind(field), field.metadata, field.name
    values = list(BAD_BY_KIND.get(kind, []))
    if kind == "ints":  # hidden=() is an MLP without hidden layers
        values += [None] + ([()] if name == "flow_hidden" else [])
    if meta["minimum"] is not None and kind == "int":
        values.append(meta["minimum"] - 1)
    if meta["positive"]:
        values += [0.0, -1.0]
    if name in SIZES:
        values.append((HUGE,) if kind == "ints" else HUGE)
    if name in ("validation_fraction", "ema", "ciwae_beta"):
        values += [1.5, -0.1]
    if name in ("free_bits", "max_minutes"):
        values.append(-1.0)
    if name == "standardize":
        values = ["x", 1, None, [1]]
    if estimator_default(field) is None:  # None: chosen from the other settings at fit
        values = [v for v in values if v is not None]
    return values


def _cases(settings, estimator: str) -> list:
    return [pytest.param(estimator, f.name, value, id=f"{estimator}-{f.name}-{value!r}")
            for f in settings() for value in _bad_values(f)]


# settings that only mean something beside another one: the bad value with that one
WITH = {"prior_components": {"prior": "mog"}, "flow_steps": {"posterior": "iaf"},
        "flow_hidden": {"posterior": "iaf"}, "flow_context": {"posterior": "iaf"},
        "miwae_m": {"objective": "miwae"}, "ciwae_beta": {"objective": "ciwae"},
        "e_steps": {"schedule": "alternating"}, "m_steps": {"schedule": "alternating"}}
EXTRA = [("vae", "prior_components", HUGE), ("vae", "flow_hidden", (HUGE,)),
         ("vae", "flow_steps", HUGE), ("vae", "flow_context", HUGE),
         ("vae", "gmm_components", HUGE), ("vae", "device", "cuda:x"),
         ("vae", "seed", 2**64), ("ae", "seed", 2**64), ("vae", "prior", [1]),
         ("vae", "objective", [1]), ("vae", "encoder", 3.5), ("ae", "device", "x")]
CASES = _cases(estimator_settings, "vae") + _cases(autoencoder_settings, "ae") + [
    pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]!r}-extra") for case in EXTRA]


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).random((20, 4)).astype(np.float32)


def _build(estimator: str, name: str, value):
    settings = {"epochs": 1, "hidden": (4,), "progress": False, "device": "cpu"}
    settings.update(WITH.get(name, {}) if estimator == "vae" else {})
    settings[name] = value
    latent = settings.pop("latent_dim", 2)
    return (VAE if estimator == "vae" else Autoencoder)(latent, **settings)


def _shown(value) -> set[str]:
    """The ways a message may write ``value`` (a tuple by its bad element)."""
    forms = {repr(value), str(value)}
    if isinstance(value, (tuple, list)):
        forms |= {repr(v) for v in value}
    return forms


def assert_one_line_naming(exc: BaseException, name: str, value) -> None:
    message = str(exc)
    assert isinstance(exc, (ParameterError, DataError)), f"{type(exc).__name__}: {message}"
    assert "\n" not in message, message
    assert name in message or name.replace("_", " ") in message, message
    assert any(form in message for form in _shown(value)), message


@pytest.mark.parametrize("estimator, name, value", CASES)
def test_a_bad_setting_is_one_line_naming_it_at_fit(X, estimator, name, value):
    torch.set_num_threads(1)
    model = _build(estimator, name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as caught:
            model.fit(X)
    assert_one_line_naming(caught.value, name, value)


@pytest.fixture(scope="module")
def fitted(X):
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"vae": VAE(2, epochs=1, hidden=(4,), progress=False, device="cpu").fit(X),
                "ae": Autoencoder(2, epochs=1, hidden=(4,)).fit(X)}


COUNTS = ["x", 2.5, None, 0, -1, NAN, True, HUGE]
SEEDS = ["bad", 2.5, -1, 2**64, [1]]
CALLS = [  # (estimator, method, argument, bad values, other arguments)
    ("vae", "sample", "n_samples", COUNTS, {}),
    ("vae", "sample", "random_state", SEEDS, {}),
    ("vae", "sample", "sampler", ["x", 1, None], {}),
    ("vae", "encode", "n_samples", ["x", 2.5, 0, -1, NAN, True, HUGE], {"X": True}),
    ("vae", "encode", "random_state", SEEDS, {"X": True, "n_samples": 2}),
    ("vae", "elbo", "n_samples", COUNTS, {"X": True}),
    ("vae", "elbo", "estimator", ["x", 1, None], {"X": True}),
    ("vae", "elbo", "random_state", SEEDS, {"X": True}),
    ("vae", "kl_to_prior", "n_samples", COUNTS[:-1], {"X": True}),  # N(0, I): no draws
    ("vae", "log_likelihood_samples", "n_importance", COUNTS, {"X": True}),
    ("vae", "log_likelihood_samples", "batch_size", ["x", 2.5, 0, -1, NAN], {"X": True}),
    ("vae", "posterior_samples", "n_samples", COUNTS, {"X": True}),
    ("vae", "prior_moments", "n_draws", [*COUNTS[:-1], 1], {}),
    ("ae", "sample", "n_samples", COUNTS, {}),
    ("ae", "sample", "random_state", SEEDS, {}),
    ("ae", "sample", "sampler", ["x", 1, None], {}),
    ("ae", "posterior_samples", "n_samples", COUNTS, {"X": True}),
]
CALL_CASES = [pytest.param(estimator, method, argument, value, others,
                           id=f"{estimator}-{method}-{argument}-{value!r}")
              for estimator, method, argument, values, others in CALLS for value in values]


@pytest.mark.parametrize("estimator, method, argument, value, others", CALL_CASES)
def test_a_bad_argument_of_a_fitted_model_is_one_line_naming_it(
        X, fitted, estimator, method, argument, value, others):
    kwargs = {k: (X[:3] if k == "X" else v) for k, v in others.items()}
    X_arg = kwargs.pop("X", None)
    call = getattr(fitted[estimator], method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as caught:
            if X_arg is None:
                call(**{argument: value}, **kwargs)
            else:
                call(X_arg, **{argument: value}, **kwargs)
    assert_one_line_naming(caught.value, argument, value)
