import numpy as np
import pytest

from elbokit._iteration import absolute_change_below, iterate, relative_change_below, squarem
from elbokit.exceptions import ConvergenceWarning


def test_stops_when_converged_and_warns_at_max_iter():
    values = iter([1.0, 2.0, 2.5, 2.5000001, 9.0])
    history = iterate(lambda: next(values), converged=absolute_change_below(1e-3),
                      max_iter=10, model="m")
    assert history == [1.0, 2.0, 2.5, 2.5000001]
    with pytest.warns(ConvergenceWarning, match=r"m did not converge in max_iter=3"):
        assert len(iterate(lambda: 1.0 * len("x"), converged=lambda v: False, max_iter=3,
                           model="m")) == 3


def test_relative_rule_waits_for_its_warm_up():
    assert not relative_change_below(0.1, after=3)([1.0, 1.0, 1.0])
    assert relative_change_below(0.1, after=3)([1.0, 1.0, 1.0, 1.05])
    assert not relative_change_below(0.01)([1.0, 1.05])


def test_squarem_is_monotone_and_much_faster_on_a_slow_linear_map():
    """A contraction x -> x* + diag(rates) (x - x*) with rates up to 0.999 (slow EM):
    the objective -|x - x*|^2 never decreases and SQUAREM needs a fraction of the steps."""
    target = np.array([1.0, -2.0, 3.0])
    rates = np.array([0.999, 0.9, 0.5])
    objective = lambda p: -float(np.sum((p[0] - target) ** 2))

    def em_step(p):
        return (target + rates * (p[0] - target),), objective(p)

    def steps_to(step, tol=1e-10):
        params, values = (np.zeros(3),), []
        while not values or -values[-1] > tol:
            params, value = step(params)
            values.append(value)
        return values

    plain, fast = steps_to(em_step), steps_to(squarem(em_step, objective))
    assert np.all(np.diff(fast) >= 0)
    assert 3 * len(fast) < len(plain) / 10  # three EM steps per cycle, still 10x fewer
