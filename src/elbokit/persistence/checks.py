"""Value checks of the fields of a file elbokit reads: each raises a one-line error
(:class:`ModelFileError` unless ``error`` says otherwise) naming the file (``where``),
the field and what it holds. A bool is never a number here."""

from __future__ import annotations

import math

from ..exceptions import ModelFileError


def check_type(value, types, name: str, where, *, error=ModelFileError) -> None:
    """Raise ``error`` unless ``value`` is one of ``types`` (a bool is not a number)."""
    types = _as_tuple(types)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise error(f"{where}: field {name!r} must be {type_names(types)}; got {short(value)}")


def check_int(value, name: str, where, low: int = 0, high: int = 2**62, *,
              error=ModelFileError) -> int:
    """An integer in [low, high]."""
    check_type(value, int, name, where, error=error)
    if not low <= value <= high:
        raise error(f"{where}: field {name!r} must lie in [{low}, {high}]; got {value}")
    return value


def check_number(value, name: str, where, low: float = -math.inf, high: float = math.inf,
                 *, positive: bool = False, error=ModelFileError) -> float:
    """A finite number in [low, high] (``positive``: also > 0), as a float."""
    check_type(value, (int, float), name, where, error=error)
    if not math.isfinite(value) or not low <= value <= high or (positive and value <= 0):
        bound = "a finite positive number" if positive else f"a finite number in [{low}, {high}]"
        raise error(f"{where}: field {name!r} must be {bound}; got {value!r}")
    return float(value)


def check_str_list(value, name: str, where, length: int | None = None, *,
                   error=ModelFileError) -> list[str] | None:
    """None, or a list of strings (of ``length`` items when given)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(f"{where}: field {name!r} must be a list of strings or null")
    if length is not None and len(value) != length:
        raise error(f"{where}: field {name!r} has {len(value)} names for {length} features")
    return value


def check_number_list(value, name: str, where, *, error=ModelFileError) -> list:
    """A list of numbers, null where a value was not finite (a trace, e.g. ``loglike_``)."""
    if not isinstance(value, list) or len(value) > 10**7 or not all(
            v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise error(f"{where}: field {name!r} must be a list of numbers")
    return value


def is_shape(value, max_dims: int = 8) -> bool:
    """A tensor shape as JSON holds it: a list of at most ``max_dims`` integers in
    [0, 2**40) (a bool is not one)."""
    return isinstance(value, list) and len(value) <= max_dims and all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**40 for n in value)


def check_keys(obj: dict, allowed, where, *, error=ModelFileError) -> None:
    """Refuse fields of ``obj`` that are not in ``allowed``."""
    unknown = sorted(str(k) for k in set(obj) - set(allowed))
    if unknown:
        raise error(f"{where} has unknown field(s) {[short(k) for k in unknown[:5]]}; it was "
                    "not written by this elbokit or was edited by hand")


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def type_names(types) -> str:
    """``(int, type(None))`` -> "an integer or null"."""
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "an object", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in _as_tuple(types))


def short(value) -> str:
    """``repr(value)``, clipped to 60 characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
