"""Every warning elbokit raises names the caller's line (the first frame outside the
package), however deep inside the fit it is raised and whichever way the fit is called."""

import warnings

import numpy as np
import pytest

import elbokit
from elbokit._warn import caller_level, warn


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    assert caught, "no warning raised"
    return caught


def test_warnings_of_a_fit_point_at_this_file(digits):
    X = digits.train[:200]  # digits has constant pixels: the FA and PCA warnings
    cases = {
        "constant features": lambda: elbokit.FactorAnalysis(2).fit(X),
        "no convergence": lambda: elbokit.FactorAnalysis(2, max_iter=2).fit(X[:, 9:16]),
        "no rotation convergence": lambda: elbokit.FactorAnalysis(
            3, rotation="varimax", max_iter=2).fit(X[:, 9:16]),
        "vbpca": lambda: elbokit.VBPCA(2, max_iter=2).fit(X[:, 9:16]),
        "variance spread": lambda: elbokit.PCA(2).fit(
            np.random.default_rng(0).normal(size=(100, 4)) * [1, 1, 1, 1e3]),
    }
    for name, fn in cases.items():
        for w in _caught(fn):
            assert w.filename == __file__, (name, w.filename, str(w.message)[:80])


def test_a_fit_through_a_pipeline_names_the_pipelines_line_not_elbokits(digits):
    import sklearn.pipeline

    pipe = sklearn.pipeline.make_pipeline(elbokit.FactorAnalysis(2))
    for w in _caught(lambda: pipe.fit(digits.train[:200])):
        assert "elbokit" not in w.filename.replace(__file__, "")
        assert w.filename.startswith(str(__import__("pathlib").Path(sklearn.__file__).parent))


def test_caller_level_counts_the_frames_inside_the_package():
    assert caller_level() == 1  # called from outside: this frame
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn("here", UserWarning)
    assert caught[0].filename == __file__ and caught[0].lineno > 0
    with pytest.raises(TypeError):
        warn("no category object", "UserWarning")
