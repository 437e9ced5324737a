import pytest

from elbokit._iteration import absolute_change_below, iterate, relative_change_below
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
