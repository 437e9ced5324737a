"""Command-line interface: a thin layer over the library.

Known errors (any :class:`elbokit.ElbokitError`, and usage errors) become one line
on stderr and exit code 2, warnings one line each (control characters escaped by
:func:`elbokit._text.one_line`: a name read from a file cannot write to the terminal);
set ``ELBOKIT_DEBUG=1`` to see the traceback. Ctrl-C ends with exit code 130 and one
line (from training: which checkpoint to resume from);
SIGTERM (``kill``, a job scheduler's stop) is handled the same way, exit code 143.
Under torchrun only rank 0 prints these lines.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

from .._text import one_line
from ..exceptions import ElbokitError
from ..persistence import clear_stop, request_stop
from . import compare, demo, evaluate, factors, fit, impute  # noqa: F401  (register commands)
from ._app import app, fit_app


def _register_optional():
    for module_name in ("fit_vae", "fit_vbpca", "fit_ae"):
        try:
            module = __import__(f"{__name__}.{module_name}", fromlist=["register"])
        except ImportError as exc:
            if f"{__name__}.{module_name}" in str(exc) or module_name in str(exc):
                continue
            raise
        module.register(fit_app)


_register_optional()


INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
TERMINATED = 143  # 128 + SIGTERM


class _Terminated:
    """A SIGTERM handler that raises KeyboardInterrupt, so that training stops as on
    Ctrl-C (the last checkpoint kept, one line saying how to resume), and remembers
    that it fired, for the exit code."""

    def __init__(self):
        self.fired = False

    def __call__(self, signum, frame):
        self.fired = True
        request_stop()  # if this KeyboardInterrupt is swallowed, no later write commits
        raise KeyboardInterrupt("terminated")


def _is_main_rank() -> bool:
    """Rank 0 of a torchrun job (its full set of variables), or a single process."""
    from .._torchrun import env_rank

    return env_rank() == 0


def _report_interrupt(exc: BaseException) -> None:
    """One line on stderr for Ctrl-C: the KeyboardInterrupt's message (training says
    which checkpoint survives), found where Typer chained it. Under torchrun only
    rank 0 prints."""
    if not _is_main_rank():
        return
    seen = exc
    while seen is not None and not isinstance(seen, KeyboardInterrupt):
        seen = seen.__cause__ or seen.__context__
    message = one_line(seen) if seen is not None and str(seen) else "interrupted"
    print(f"elbokit: {message}", file=sys.stderr)


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"elbokit: {category.__name__}: {one_line(message)}\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``elbokit`` console script; returns the exit code.

    Usage errors are reported by Typer itself (exit code 2); elbokit's own errors
    and file-system errors become one line on stderr with exit code 2."""
    debug = os.environ.get("ELBOKIT_DEBUG", "") not in ("", "0")
    warnings.formatwarning = _one_line_warning
    terminated = _Terminated()
    clear_stop()
    previous = _install_sigterm(terminated)
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(unraisable)
    try:
        app(args=_bare_options(sys.argv[1:] if argv is None else argv), prog_name="elbokit",
            standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code == INTERRUPTED:  # Typer turned Ctrl-C into exit code 130
            _report_interrupt(exc)
            return TERMINATED if terminated.fired else INTERRUPTED
        if terminated.fired:  # a SIGTERM whose KeyboardInterrupt was swallowed somewhere
            _report_interrupt(KeyboardInterrupt("terminated; no output was committed "
                                                "after the signal"))
            return TERMINATED
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt as exc:
        _report_interrupt(exc)
        return TERMINATED if terminated.fired else INTERRUPTED
    except (ElbokitError, OSError) as exc:
        if debug:
            raise
        if _is_main_rank():  # under torchrun every rank fails alike: one line in all
            message = one_line(exc) if str(exc) else type(exc).__name__
            print(f"elbokit: error: {message} (set ELBOKIT_DEBUG=1 for the traceback)",
                  file=sys.stderr)
        return 2
    finally:
        clear_stop()
        sys.unraisablehook = unraisable
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return TERMINATED if terminated.fired else 0


def _bare_options(argv: list[str]) -> list[str]:
    """``--mlflow`` without its optional value (see :func:`.fit_vae.bare_options`)."""
    try:
        from .fit_vae import bare_options
    except ImportError:  # no torch: no fit vae
        return argv
    return bare_options(list(argv))


def _quiet_interrupts(hook):
    """An unraisable-exception hook that drops the KeyboardInterrupt of a stop raised
    where Python discards it (a gc callback, a __del__): the stop is handled through
    :func:`elbokit.persistence.request_stop` and the exit code, not a traceback."""
    def quiet(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        hook(unraisable)

    return quiet


def _install_sigterm(handler):
    """Route SIGTERM to ``handler``; the previous handler, or None where signals cannot
    be set (outside the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:
        return None


def run() -> None:
    sys.exit(main())
