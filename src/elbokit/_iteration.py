"""The loop every iterative fit shares: call a step until a convergence test
passes or ``max_iter`` is reached, with a progress bar and, on ``max_iter``,
scikit-learn's ``ConvergenceWarning`` naming the model and the last change."""

from __future__ import annotations

import functools
from typing import Callable

from ._warn import warn
from .exceptions import ConvergenceWarning
from .progress import progress_bar


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_blas_thread():
    """Context manager: BLAS on one thread, for loops of small products and solves
    where threads only add synchronisation (ruinous on a busy machine). The loaded
    libraries are inspected once per process (threadpoolctl's search costs ~4 ms,
    a third of a small table's whole fit)."""
    return _blas_controller().limit(limits=1, user_api="blas")


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
    warn(f"{model} did not converge in max_iter={max_iter} iterations (last change "
         f"{change:.3g}); raise max_iter or tol.", ConvergenceWarning)
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


def squarem(em_step: Callable, loglike: Callable, project: Callable = lambda p: p) -> Callable:
    """Accelerate a monotone EM map by SQUAREM (Varadhan & Roland 2008, scheme S3).

    ``em_step(params) -> (new_params, loglike(params))`` is one EM iteration on a tuple
    of arrays, ``loglike(params)`` the objective, ``project`` clips parameters back to
    the feasible set (e.g. noise variances to their floor). The returned
    ``cycle(params) -> (new_params, loglike(params))`` takes two EM steps, extrapolates
    along them, stabilises with one more EM step, and keeps the result only when its
    objective is at least that of the two plain steps: so the objective never
    decreases from cycle to cycle, as with plain EM."""
    import numpy as np

    def flat(params):
        return np.concatenate([np.ravel(a) for a in params])

    def unflat(vector, like):
        out, start = [], 0
        for a in like:
            size = np.size(a)
            out.append(np.reshape(vector[start:start + size], np.shape(a)))
            start += size
        return tuple(out)

    def cycle(params):
        first, value = em_step(params)
        second, _ = em_step(first)
        r = flat(first) - flat(params)
        v = flat(second) - flat(first) - r
        step = -np.sqrt(r @ r) / max(float(np.sqrt(v @ v)), 1e-300)
        step = min(step, -1.0)  # -1: the plain two EM steps
        jumped = project(unflat(flat(params) - 2.0 * step * r + step**2 * v, params))
        try:
            candidate, _ = em_step(jumped)
            accept = loglike(candidate) >= loglike(second)
        except np.linalg.LinAlgError:
            accept = False
        return (candidate if accept else second), value

    return cycle
