"""The resume rule: which training settings a resumed fit may change.

Each field of :class:`~elbokit.nn.config.TrainingConfig` declares its rule
(``setting(..., resume=...)``): ``"refuse"`` a change (the resumed run would optimise
another objective, or take other steps: it would no longer continue the checkpoint's
run), ``"warn"`` (the same steps rounded otherwise: precision, the written-out step) or
``"free"`` (epochs, patience, device, progress). ``VAE.fit(resume=True)`` and
``elbokit fit vae --resume`` both call :func:`check_resume`, so they refuse and warn
alike, with the same message. The architecture is not a matter of rules: a checkpoint
resumes only into the architecture it was written for. No torch here (the CLI checks
before it loads any data; :mod:`elbokit.nn.train` imports its parts when first used).
"""

from __future__ import annotations

import dataclasses

from ... import _warn
from ...exceptions import ParameterError
from ..config import TrainingConfig


def resume_rules() -> dict[str, str]:
    """Each training setting's rule, ``{name: "refuse" | "warn" | "free"}``."""
    return {f.name: f.metadata["resume"] for f in dataclasses.fields(TrainingConfig)}


def resume_changes(saved, new) -> dict[str, list[tuple[str, object, object]]]:
    """The settings ``new`` changes from ``saved`` (each a TrainingConfig or a dict by
    field name), as ``(name, old, new)`` under their rule. A setting missing from a
    dict, or None there (resolved at fit, e.g. the CLI's precision "auto"), is not
    compared."""
    saved, new = _as_dict(saved), _as_dict(new)
    changes = {"refuse": [], "warn": [], "free": []}
    for name, rule in resume_rules().items():
        old, value = saved.get(name), new.get(name)
        if old is not None and value is not None and old != value:
            changes[rule].append((name, old, value))
    return changes


def check_resume(saved, new, where, *, warn: bool = True) -> None:
    """Raise ParameterError if ``new`` changes a setting of the checkpoint ``where``
    that must stay (naming each with its old and new value); else warn of the changes
    that only round otherwise (``warn=False``: leave that to the fit)."""
    changes = resume_changes(saved, new)
    if changes["refuse"]:
        rules = resume_rules()
        free = [name for name, rule in rules.items() if rule == "free"]
        rounding = [name for name, rule in rules.items() if rule == "warn"]
        raise ParameterError(
            f"cannot resume from {where}: {_listed(changes['refuse'])}; only "
            f"{_and(free)} may change ({_and(rounding)} with a warning): pass the "
            "checkpoint's values, or start a new run in another directory")
    if warn and changes["warn"]:
        _warn.warn(f"resuming from {where} with {_listed(changes['warn'])}: the result "
                   "will differ from an uninterrupted run by rounding", UserWarning)


def _listed(changes: list[tuple[str, object, object]]) -> str:
    return ", ".join(f"{name} changed from {old!r} (the checkpoint's) to {new!r}"
                     for name, old, new in changes)


def _and(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _as_dict(settings) -> dict:
    if isinstance(settings, TrainingConfig):
        return settings.to_dict()
    return dict(settings)
