"""The loop every iterative fit shares: call a step until a convergence test
passes or ``max_iter`` is reached, with a progress bar and, on ``max_iter``,
scikit-learn's ``ConvergenceWarning`` naming the model and the last change."""

from __future__ import annotations

import warnings
from typing import Callable

from .exceptions import ConvergenceWarning
from .progress import progress_bar


def absolute_change_below(tol: float, *, after: int = 1) -> Callable[[list[float]], bool]:
    """Converged when the last value moved by less than ``tol`` (after ``after`` steps)."""
    return lambda values: len(values) > after and abs(values[-1] - values[-2]) < tol


def relative_change_below(tol: float, *, after: int = 1) -> Callable[[list[float]], bool]:
    """Converged when the last value moved by at most ``tol`` times its size."""
    return lambda values: len(values) > after and \
        abs(values[-1] - values[-2]) <= tol * max(abs(values[-1]), 1e-300)


def iterate(step: Callable[[], float], *, converged: Callable[[list[float]], bool],
            max_iter: int, model: str, desc: str | None = None,
            verbose: bool = False) -> list[float]:
    """Run ``step() -> value`` until ``converged(values)`` or ``max_iter`` calls.

    Returns the list of values (its length is the number of iterations run)."""
    values: list[float] = []
    with progress_bar(total=max_iter, desc=desc or model, disable=not verbose) as bar:
        for _ in range(max_iter):
            values.append(step())
            bar.update(1)
            if converged(values):
                return values
    change = abs(values[-1] - values[-2]) if len(values) > 1 else float("nan")
    warnings.warn(f"{model} did not converge in max_iter={max_iter} iterations (last change "
                  f"{change:.3g}); raise max_iter or tol.", ConvergenceWarning, stacklevel=4)
    return values


def finite_steps(step: Callable[[], float], *, model: str, hint: str,
                 arrays: Callable[[], tuple] = tuple) -> Callable[[], float]:
    """Wrap ``step`` so that a numerically broken iteration (LinAlgError, or a
    non-finite value or parameter, e.g. from data near the float64 range) raises
    :class:`~elbokit.exceptions.TrainingError` naming the model and the iteration."""
    import numpy as np

    from .exceptions import TrainingError

    count = [0]

    def guarded() -> float:
        count[0] += 1
        try:
            value = step()
        except np.linalg.LinAlgError as exc:
            raise TrainingError(f"{model}: iteration {count[0]} became numerically singular "
                                f"({exc}); {hint}") from None
        if not np.isfinite(value) or not all(np.all(np.isfinite(a)) for a in arrays()):
            raise TrainingError(f"{model}: iteration {count[0]} produced non-finite values; "
                                f"{hint}")
        return value

    return guarded
