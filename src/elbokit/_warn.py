"""Warnings that point at the caller's line.

A warning raised deep inside elbokit (a fit calls the E-step, a save passes through
the commit path) names the first frame outside the package: the user's line, or the
library's (scikit-learn's pipeline) that called elbokit. A fixed ``stacklevel`` is right
for one way in and wrong for the others. (Python 3.12's ``skip_file_prefixes`` does
the same; elbokit runs on 3.11.)"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


def caller_level() -> int:
    """The ``stacklevel``, counted from the function that calls this one, of the first
    frame outside elbokit."""
    frame, level = sys._getframe(1), 1
    while frame is not None and _inside(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def _inside(filename: str) -> bool:
    try:
        return str(Path(filename).resolve()).startswith(_PACKAGE)
    except (OSError, ValueError):  # "<string>", a frozen module
        return False


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the caller's first frame
    outside elbokit."""
    warnings.warn(message, category, stacklevel=caller_level())
