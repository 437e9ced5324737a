"""The machinery behind a config dataclass of declared settings: :func:`setting` (a
field with its help, range or choices, CLI flag and resume rule), the check of every
field against its declaration, and the JSON round trip (``to_dict`` / ``from_dict``)
whose errors name the field. :mod:`elbokit.nn.config` declares the settings with it;
the value checks are ``elbokit._validation``'s, the ones every estimator uses.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field

from .._validation import check_choice, check_int, check_positive
from ..exceptions import ModelFileError, ParameterError

UNSET = dataclasses.MISSING
# what a resumed fit may do with a setting: "refuse" a change (the default: the run would
# optimise something else, or step otherwise), "warn" (the same steps, other rounding),
# or take a "free" change (how long, where and how visibly the run goes on)
RESUME_RULES = ("refuse", "warn", "free")


def setting(default, help: str, *, choices=None, minimum=None, maximum=None,
            positive: bool = False,
            estimator_default=UNSET, flag: str | None = None, cli: bool = True,
            positional: bool = False, resume: str = "refuse"):
    """A config field with what every consumer needs to know about it.

    ``choices``: the allowed values; ``minimum``, ``maximum``: the least and the
    greatest integer allowed;
    ``positive``: a finite number > 0. ``estimator_default``: the default of the
    :class:`~elbokit.nn.VAE` argument when it differs from the stored (resolved)
    value, e.g. ``None`` for "chosen from the other settings at fit". ``flag``: the
    CLI option's name (default ``--name-with-dashes``); ``cli=False`` keeps a
    setting off the command line; ``positional``: the estimator's first argument.
    ``resume``: whether a resumed fit may change the setting (one of
    :data:`RESUME_RULES`; the rule is applied by :mod:`elbokit.nn.train.resume`)."""
    if resume not in RESUME_RULES:
        raise ValueError(f"resume must be one of {RESUME_RULES}; got {resume!r}")
    metadata = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum,
                "positive": positive,
                "estimator_default": estimator_default, "flag": flag, "cli": cli,
                "positional": positional, "resume": resume}
    return field(default=default, metadata=metadata)


def estimator_default(f: dataclasses.Field):
    """The default of the estimator's argument for field ``f``."""
    default = f.metadata["estimator_default"]
    return f.default if default is UNSET else default


class Settings:
    """The JSON round trip of a config dataclass of :func:`setting` fields; ``section``
    names it in the messages of :meth:`from_dict` (e.g. "architecture")."""

    section = "settings"

    def to_dict(self) -> dict:
        """The fields as JSON values (tuples as lists)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, obj, where: str | None = None):
        """The config of a JSON object, every field checked (a
        :class:`~elbokit.exceptions.ModelFileError` naming ``where`` and the field)."""
        return from_dict(cls, obj, where or cls.section)


# --------------------------------------------------------------------------- checks

def check_fields(config) -> None:
    """Each field's declared type and range (the metadata of :func:`setting`)."""
    for f in dataclasses.fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if value is None and f.default is None:
            continue
        kind = _kind(f)
        if kind == "labels" and not _labels(value):
            raise ParameterError(f"{f.name} must be a tuple of integers or of strings; got "
                                 f"{value!r}")
        if kind == "bool" and not isinstance(value, bool):
            raise ParameterError(f"{f.name} must be True or False; got {value!r}")
        if kind in ("ints", "pair"):
            if not isinstance(value, tuple) or kind == "pair" and len(value) != 2:
                shape = "(height, width), two integers" if kind == "pair" else \
                    "a tuple of integers"
                raise ParameterError(f"{f.name} must be {shape}; got {value!r}")
            label = f.name.replace("_", " ").replace("hidden", "hidden size") \
                if "hidden" in f.name else f.name
            for v in value:
                _check_int(v, label, meta)
        elif kind == "int":
            _check_int(value, f.name, meta)
        if meta["positive"]:
            check_positive(value, f.name)
        if meta["choices"] is not None:
            check_choice(value, f.name, meta["choices"], sort=False)


def _check_int(value, name: str, meta) -> None:
    check_int(value, name, minimum=meta["minimum"])
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ParameterError(f"{name} must be <= {meta['maximum']}; got {value}")


def _labels(value) -> bool:
    """Whether ``value`` is a tuple of class labels: all integers or all strings."""
    if not isinstance(value, tuple):
        return False
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    return ints or all(isinstance(v, str) for v in value)


def json_value(value):
    """``value`` as JSON reads it back (tuples become lists), or raise ParameterError
    naming what JSON cannot hold (an object, NaN, a non-string key)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"not a JSON value: {str(exc)[:80]}") from None


# the kind of each annotation (a string under ``from __future__ import annotations``)
_KINDS = {"int": "int", "float": "float", "str": "str", "bool": "bool",
          "tuple[int, ...]": "ints", "tuple[int, int] | None": "pair",
          "tuple[str, ...] | None": "strs", "tuple[int | str, ...] | None": "labels",
          "dict | None": "json"}


def _kind(f: dataclasses.Field) -> str:
    return _KINDS[f.type if isinstance(f.type, str) else f.type.__name__]


# --------------------------------------------------------------------------- JSON round trip

def to_dict(config) -> dict:
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def from_dict(cls, obj, where: str):
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
        kwargs[name] = _convert(obj[name], f, where)
    try:
        return cls(**kwargs)
    except ParameterError as exc:
        raise ModelFileError(f"{where}: {exc}") from None


def _convert(value, f: dataclasses.Field, where):
    """A JSON value as the field's Python type; the checks here run before
    __post_init__'s range checks."""
    kind, name = _kind(f), f.name
    if value is None and f.default is None:
        return None
    if kind == "json":
        if not isinstance(value, dict):
            raise ModelFileError(f"{where}.{name} must be an object; got {str(value)[:60]}")
        return value
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ModelFileError(f"{where}.{name} must be a list of strings; got {value!r}")
        return tuple(value)
    if kind == "labels":
        if not isinstance(value, list) or not _labels(tuple(value)):
            raise ModelFileError(f"{where}.{name} must be a list of integers or of strings; "
                                 f"got {str(value)[:80]}")
        return tuple(value)
    if kind in ("ints", "pair"):
        if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ModelFileError(f"{where}.{name} must be a list of integers; got {value!r}")
        return tuple(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelFileError(f"{where}.{name} must be a number; got {value!r}")
        return float(value)
    return value  # ints, strings and bools are checked by __post_init__
