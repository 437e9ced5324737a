"""Strings from files, escaped for where they are shown: a terminal line (control
characters), an HTML page (``html.escape``, used where the page is built) and a
matplotlib figure (plain text: no mathtext, no TeX).

A run directory or a data file received from someone else may hold any string in
its names (run.json's, a CSV header's, a folder's class names): an escape sequence
printed raw moves the cursor, retitles the terminal or hides the rest of a line; a
``$...$`` in a label is parsed as mathtext (and fails on an unknown command)."""

from __future__ import annotations

import contextlib
import unicodedata

# bidirectional overrides and isolates reorder what follows them on the screen
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _shown(char: str) -> str:
    if char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def terminal_text(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1: ESC and CSI among them,
    newlines too), bidirectional control and line separator written as its escape
    (``\\x1b``, ``\\n``, ``\\u202e``): printable on a terminal, one line, as it is."""
    return "".join(_shown(c) for c in str(text))


def one_line(message: str) -> str:
    """The first line of an error or warning message (elbokit's own messages are one
    line; a foreign library's may add more), its control characters escaped
    (:func:`terminal_text`): a newline inside a name read from a file cannot start a
    line of its own, an escape sequence cannot reach the terminal."""
    first = str(message).split("\n", 1)[0].removesuffix("\r")
    return terminal_text(first)


@contextlib.contextmanager
def plain_text():
    """Figures drawn inside take every string as plain text: matplotlib's mathtext
    (``$\\alpha$``) and TeX (``text.usetex`` of a user's matplotlibrc) are off, so a
    feature or class name is drawn as written and cannot make the parser fail. Only
    elbokit's own drawing runs inside; the user's settings are restored after."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        yield
