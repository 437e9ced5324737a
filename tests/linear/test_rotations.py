"""elbokit.linear.rotations against factor_analyzer (a second implementation of R's
stats::varimax and GPArotation's GPA), closed simple-structure cases, the invariances
a rotation must keep, and the error messages."""

import warnings

import numpy as np
import pytest
from factor_analyzer import Rotator
from scipy.stats import ortho_group
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.decomposition import FactorAnalysis
from sklearn.preprocessing import StandardScaler

from elbokit.exceptions import ConvergenceWarning, DataError, ParameterError
from elbokit.linear.rotations import (OBLIQUE, ORTHOGONAL, ROTATIONS, _criterion, _geomin,
                                      _gpa_orthogonal, _oblimin, align_factors, rotate)

FA_NAMES = {"varimax": "varimax", "quartimax": "quartimax", "quartimin": "quartimin",
            "oblimin": "oblimin", "geomin": "geomin_obl", "promax": "promax"}


def _ml_loadings(loader, n_factors):
    X = StandardScaler().fit_transform(loader().data)
    return FactorAnalysis(n_factors, random_state=0).fit(X).components_.T


@pytest.fixture(scope="module")
def real_loadings():
    """Unrotated ML loadings of standardized wine (3 factors), breast cancer (4)."""
    return {"wine": _ml_loadings(load_wine, 3), "breast_cancer": _ml_loadings(load_breast_cancer, 4)}


def _row_lengths(A):
    return np.sqrt(np.sum(A**2, axis=1))[:, None]


def _aligned(loadings, phi=None):
    return align_factors(loadings, phi)[:2]


def _assert_same_solution(loadings, phi, ref_loadings, ref_phi, atol):
    """Equal up to the order and signs of the factors."""
    lam, p = _aligned(loadings, phi)
    lam_ref, p_ref = _aligned(ref_loadings, ref_phi)
    np.testing.assert_allclose(lam, lam_ref, atol=atol)
    np.testing.assert_allclose(p, p_ref, atol=atol)


# --- a second implementation --------------------------------------------------------

@pytest.mark.parametrize("data", ["wine", "breast_cancer"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("method", ["varimax", "quartimax", "quartimin", "oblimin", "geomin"])
def test_matches_factor_analyzer(real_loadings, data, normalize, method):
    A = real_loadings[data]
    ours = rotate(A, method, normalize=normalize)
    assert ours.converged
    if method == "varimax":  # factor_analyzer's varimax is R's, normalize included
        rot = Rotator(method="varimax", normalize=normalize)
        ref = rot.fit_transform(A)
    else:  # its GPA rotations never normalize: give it the normalized rows
        w = _row_lengths(A) if normalize else np.ones((A.shape[0], 1))
        rot = Rotator(method=FA_NAMES[method], max_iter=1000)
        ref = rot.fit_transform(A / w) * w
    ref_phi = np.eye(A.shape[1]) if rot.phi_ is None else rot.phi_
    _assert_same_solution(ours.loadings, ours.factor_correlation, ref, ref_phi, atol=1e-6)
    np.testing.assert_allclose(ours.rotation_matrix, rot.rotation_, atol=1e-6)


@pytest.mark.parametrize("data", ["wine", "breast_cancer"])
def test_promax_matches_factor_analyzer_without_normalization(real_loadings, data):
    A = real_loadings[data]
    ours = rotate(A, "promax", normalize=False)
    rot = Rotator(method="promax", normalize=False)
    ref = rot.fit_transform(A)
    _assert_same_solution(ours.loadings, ours.factor_correlation, ref, rot.phi_, atol=1e-6)


@pytest.mark.parametrize("data", ["wine", "breast_cancer"])
def test_promax_psych_convention_differs_from_stats(real_loadings, data):
    """factor_analyzer's normalized promax is psych's kaiser(A, "Promax"): the whole
    promax on the normalized rows, scaled back. The docstring's recipe reproduces it;
    R's stats::promax (ours) differs from it by much more than the tolerance."""
    A = real_loadings[data]
    w = _row_lengths(A)
    rot = Rotator(method="promax", normalize=True)
    ref = rot.fit_transform(A)
    psych = rotate(A / w, "promax")
    _assert_same_solution(psych.loadings * w, psych.factor_correlation, ref, rot.phi_, 1e-6)
    stats = rotate(A, "promax")
    assert np.abs(_aligned(stats.loadings)[0] - _aligned(ref)[0]).max() > 0.05


@pytest.mark.parametrize("normalize", [False, True])
def test_promax_is_the_scaled_regression_on_the_power_target(real_loadings, normalize):
    """stats::promax: each pattern column is a positive multiple of the least-squares
    fit of x |x|^3 (x: the varimax loadings) on x, scaled to unit factor variance."""
    A = real_loadings["breast_cancer"]
    x = rotate(A, "varimax", normalize=normalize).loadings
    pro = rotate(A, "promax", normalize=normalize)
    target = x * np.abs(x) ** 3
    fitted = x @ np.linalg.solve(x.T @ x, x.T @ target)
    ratio = pro.loadings / fitted
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0], ratio.shape), rtol=1e-8)
    assert np.all(ratio[0] > 0)
    np.testing.assert_allclose(np.diag(pro.factor_correlation), 1.0, atol=1e-12)


@pytest.mark.parametrize("data", ["wine", "breast_cancer"])
def test_varimax_agrees_with_gpa_varimax(real_loadings, data):
    """R's SVD iteration run to a tight tol reaches GPArotation's Varimax (GPA on
    vgQ.varimax, Kaiser-normalized); at stats' eps = 1e-5 it stops within 2e-3."""
    A = real_loadings[data]
    w = _row_lengths(A)
    T, _, converged, _ = _gpa_orthogonal(A / w, _criterion("varimax"), np.eye(A.shape[1]),
                                         1e-7, 5000)
    assert converged
    tight = rotate(A, "varimax", tol=1e-12)
    _assert_same_solution(tight.loadings, None, A @ T, None, atol=1e-6)
    gap = np.abs(_aligned(rotate(A, "varimax").loadings)[0] - _aligned(A @ T)[0]).max()
    assert 1e-6 < gap < 2e-3


def test_quartimin_is_oblimin_with_gamma_zero(real_loadings):
    for A in real_loadings.values():
        q = rotate(A, "quartimin")
        o = rotate(A, "oblimin", gamma=0.0)
        np.testing.assert_array_equal(q.loadings, o.loadings)
        np.testing.assert_array_equal(q.rotation_matrix, o.rotation_matrix)


# --- what every rotation keeps ------------------------------------------------------

def _all_methods():
    return [(m, {}) for m in ROTATIONS] + [("oblimin", {"gamma": 0.5}),
                                           ("oblimin", {"gamma": -0.5})]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("method,kwargs", _all_methods())
def test_rotation_leaves_the_model_covariance_unchanged(real_loadings, method, kwargs,
                                                        normalize):
    A = real_loadings["breast_cancer"]
    r = rotate(A, method, normalize=normalize, **kwargs)
    lam, phi, T = r.loadings, r.factor_correlation, r.rotation_matrix
    np.testing.assert_allclose(lam @ phi @ lam.T, A @ A.T, atol=1e-10)
    assert r.oblique == (method in OBLIQUE)
    if r.oblique:
        np.testing.assert_allclose(lam, A @ np.linalg.inv(T).T, atol=1e-10)
        np.testing.assert_allclose(phi, T.T @ T, atol=1e-12)
        np.testing.assert_allclose(np.diag(phi), 1.0, atol=1e-12)
    else:
        np.testing.assert_allclose(lam, A @ T, atol=1e-12)
        np.testing.assert_allclose(T.T @ T, np.eye(A.shape[1]), atol=1e-12)
        np.testing.assert_array_equal(phi, np.eye(A.shape[1]))


@pytest.mark.parametrize("method,kwargs", [("quartimax", {}), ("varimax", {}),
                                           ("quartimin", {}), ("oblimin", {"gamma": 0.5}),
                                           ("oblimin", {"gamma": -0.5}), ("geomin", {})])
def test_criterion_does_not_increase_from_the_start(real_loadings, method, kwargs):
    crit = _criterion(method, kwargs.get("gamma", 0.0))
    for A in real_loadings.values():
        w = _row_lengths(A)
        r = rotate(A, method, **kwargs)
        start, end = crit(A / w)[0], crit(r.loadings / w)[0]
        assert end < start - 1e-3 * abs(start)


def _tangent_curve(T, D, t, oblique):
    if oblique:
        X = T + t * D
        return X / np.sqrt(np.sum(X**2, axis=0))
    U, _, Vt = np.linalg.svd(T + t * D)
    return U @ Vt


@pytest.mark.parametrize("method,kwargs", [("oblimin", {"gamma": 0.5}),
                                           ("oblimin", {"gamma": -0.5}), ("geomin", {}),
                                           ("quartimax", {}), ("quartimin", {})])
def test_solution_is_stationary_by_finite_differences(real_loadings, method, kwargs):
    """Independent of the analytic gradients (factor_analyzer cannot check
    gamma != 0): the criterion is flat, to second order, along random curves of
    admissible rotation matrices through the solution."""
    A = real_loadings["wine"]
    r = rotate(A, method, normalize=False, tol=1e-7, **kwargs)
    crit = _criterion(method, kwargs.get("gamma", 0.0))
    oblique = method in OBLIQUE

    def f(T):
        return crit(A @ (np.linalg.inv(T).T if oblique else T))[0]

    rng = np.random.default_rng(0)
    T, h = r.rotation_matrix, 1e-5
    for _ in range(5):
        D = rng.standard_normal(T.shape)
        slope = (f(_tangent_curve(T, D, h, oblique))
                 - f(_tangent_curve(T, D, -h, oblique))) / (2 * h)
        assert abs(slope) < 1e-6 * max(1.0, abs(f(T)))
        # and the curve is not flat at the start: the test can fail
        T0 = np.eye(T.shape[0])
        slope0 = (f(_tangent_curve(T0, D, h, oblique))
                  - f(_tangent_curve(T0, D, -h, oblique))) / (2 * h)
        assert abs(slope0) > 1e-4


@pytest.mark.parametrize("method", ["oblimin", "geomin"])
def test_criterion_gradients_match_finite_differences(method):
    rng = np.random.default_rng(1)
    L, E = rng.standard_normal((7, 3)), rng.standard_normal((7, 3))
    crit = (lambda X: _oblimin(X, 0.7)) if method == "oblimin" else (lambda X: _geomin(X, 0.05))
    h = 1e-6
    numeric = (crit(L + h * E)[0] - crit(L - h * E)[0]) / (2 * h)
    np.testing.assert_allclose(np.sum(crit(L)[1] * E), numeric, rtol=1e-6)


@pytest.mark.parametrize("method", [m for m in ROTATIONS if m != "promax"])
def test_kaiser_normalization_is_invariant_to_row_scaling(real_loadings, method):
    A = real_loadings["wine"]
    D = np.random.default_rng(2).uniform(0.2, 5.0, size=(A.shape[0], 1))
    base, scaled = rotate(A, method), rotate(D * A, method)
    np.testing.assert_allclose(scaled.rotation_matrix, base.rotation_matrix, atol=1e-8)
    np.testing.assert_allclose(scaled.loadings, D * base.loadings, atol=1e-8)
    raw = rotate(D * A, method, normalize=False)  # without it the rotation moves
    assert np.abs(raw.rotation_matrix - base.rotation_matrix).max() > 1e-3


def test_stats_promax_is_not_invariant_to_row_scaling(real_loadings):
    """As the module docstring says: only its varimax step is."""
    A = real_loadings["wine"]
    D = np.random.default_rng(2).uniform(0.2, 5.0, size=(A.shape[0], 1))
    base, scaled = rotate(A, "promax"), rotate(D * A, "promax")
    assert np.abs(scaled.loadings - D * base.loadings).max() > 1e-3


# --- closed cases -------------------------------------------------------------------

def _simple_structure(d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    lam = np.zeros((d, k))
    lam[np.arange(d), np.arange(d) % k] = rng.uniform(0.4, 0.9, size=d)
    return lam


PHI = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, -0.25], [0.2, -0.25, 1.0]])


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("method", ORTHOGONAL)
def test_orthogonal_rotations_recover_a_rotated_simple_structure(method, normalize):
    lam = _simple_structure()
    A = lam @ ortho_group.rvs(3, random_state=1).T
    r = rotate(A, method, normalize=normalize, tol=1e-12 if method == "varimax" else 1e-9)
    _assert_same_solution(r.loadings, None, lam, None, atol=1e-6)


def _oblique_problem():
    lam = _simple_structure()
    A = lam @ np.linalg.cholesky(PHI) @ ortho_group.rvs(3, random_state=1)
    np.testing.assert_allclose(A @ A.T, lam @ PHI @ lam.T, atol=1e-12)
    return lam, A


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("method", ["quartimin", "oblimin"])
def test_quartimin_recovers_an_oblique_simple_structure(method, normalize):
    lam, A = _oblique_problem()
    r = rotate(A, method, normalize=normalize, tol=1e-7, gamma=0.0)
    assert r.converged
    _assert_same_solution(r.loadings, r.factor_correlation, lam, PHI, atol=1e-5)
    assert _oblimin(r.loadings, 0.0)[0] < 1e-10  # the minimum, 0, at perfect structure


@pytest.mark.parametrize("normalize", [False, True])
def test_geomin_recovers_it_up_to_a_bias_of_order_delta(normalize):
    """With delta > 0 the perfect structure is not geomin's minimum: the solution is
    off by about delta / 4 (normalized) to delta / 2, shrinking with delta, and its
    criterion is no higher than the truth's."""
    lam, A = _oblique_problem()
    w = _row_lengths(A) if normalize else 1.0
    errors = []
    for delta in (1e-2, 3e-3, 1e-3):
        r = rotate(A, "geomin", delta=delta, normalize=normalize, tol=1e-7, max_iter=5000)
        lam_hat, phi_hat = _aligned(r.loadings, r.factor_correlation)
        errors.append(np.abs(lam_hat - _aligned(lam, PHI)[0]).max())
        assert errors[-1] < 0.6 * delta
        assert np.abs(phi_hat - _aligned(lam, PHI)[1]).max() < delta
        assert _geomin(r.loadings / w, delta)[0] <= _geomin(lam / w, delta)[0]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("normalize", [False, True])
def test_promax_approximately_recovers_an_oblique_simple_structure(normalize):
    lam, A = _oblique_problem()
    r = rotate(A, "promax", normalize=normalize)
    _assert_same_solution(r.loadings, r.factor_correlation, lam, PHI, atol=3e-3)


def test_random_start_reaches_the_same_solution(real_loadings):
    A = real_loadings["wine"]
    for method, tol in (("varimax", 1e-10), ("quartimin", 1e-7)):
        ref = rotate(A, method, tol=tol)
        r = rotate(A, method, tol=tol, random_state=3)
        assert not np.allclose(r.rotation_matrix, ref.rotation_matrix)  # another start
        _assert_same_solution(r.loadings, r.factor_correlation, ref.loadings,
                              ref.factor_correlation, atol=1e-6)
        again = rotate(A, method, tol=tol, random_state=3)
        np.testing.assert_array_equal(again.loadings, r.loadings)


def test_zero_row_is_left_alone():
    A = np.vstack([_simple_structure() @ ortho_group.rvs(3, random_state=4), np.zeros(3)])
    for method in ROTATIONS:
        r = rotate(A, method)
        assert np.all(np.isfinite(r.loadings))
        np.testing.assert_array_equal(r.loadings[-1], 0.0)


# --- align_factors ------------------------------------------------------------------

def test_align_factors_reflects_and_orders():
    lam = np.array([[-0.1, 0.3, 0.9], [-0.2, 0.4, 0.8], [-0.9, 0.1, 0.0]])
    out, phi, T = align_factors(lam)
    # column SS: 0.86, 0.26, 1.45 -> order 2, 0, 1; column 0 sums negative -> reflected
    np.testing.assert_allclose(out, np.column_stack([lam[:, 2], -lam[:, 0], lam[:, 1]]))
    np.testing.assert_array_equal(phi, np.eye(3))
    assert T is None


@pytest.mark.parametrize("method", ["varimax", "promax", "geomin"])
def test_align_factors_keeps_the_model(real_loadings, method):
    A = real_loadings["breast_cancer"]
    r = rotate(A, method)
    lam, phi, T = align_factors(r.loadings, r.factor_correlation, r.rotation_matrix)
    assert np.all(lam.sum(axis=0) >= 0)
    explained = np.diag(phi @ lam.T @ lam)
    assert np.all(np.diff(explained) <= 0)
    np.testing.assert_allclose(lam @ phi @ lam.T, A @ A.T, atol=1e-10)
    np.testing.assert_allclose(phi, T.T @ T, atol=1e-12)
    expected = A @ np.linalg.inv(T).T if r.oblique else A @ T
    np.testing.assert_allclose(lam, expected, atol=1e-10)
    # the oblique order uses Phi: with Phi = I it may differ (psych's convention)
    if r.oblique:
        assert not np.allclose(explained, np.sum(lam**2, axis=0))


# --- bad input ----------------------------------------------------------------------

def _one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("method", ROTATIONS)
def test_one_factor_is_refused(method):
    with pytest.raises(ParameterError) as excinfo:
        rotate(np.ones((5, 1)), method)
    assert _one_line(excinfo) == f"rotation={method!r} needs at least 2 factors; got 1"


def test_unknown_method_lists_the_choices():
    with pytest.raises(ParameterError) as excinfo:
        rotate(np.ones((5, 2)), "equamax")
    message = _one_line(excinfo)
    assert "'equamax'" in message and all(repr(m) in message for m in ROTATIONS)


@pytest.mark.parametrize("A,words", [(np.array([[1.0, np.nan], [0.5, 0.2]]), "NaN"),
                                     (np.array([[1.0, np.inf], [0.5, 0.2]]), "inf"),
                                     (np.ones(4), "2-D"), (np.ones((2, 2, 2)), "2-D")])
def test_bad_loadings_are_refused(A, words):
    with pytest.raises(DataError) as excinfo:
        rotate(A, "varimax")
    assert words in _one_line(excinfo)


@pytest.mark.parametrize("kwargs,name", [({"power": 0.5}, "power"), ({"delta": 0.0}, "delta"),
                                         ({"gamma": np.nan}, "gamma"),
                                         ({"max_iter": 0}, "max_iter"), ({"tol": -1.0}, "tol")])
def test_bad_options_are_refused(kwargs, name):
    with pytest.raises(ParameterError, match=name):
        rotate(np.eye(3)[:, :2] + 0.1, "oblimin", **kwargs)


@pytest.mark.parametrize("method", OBLIQUE)
def test_oblique_rotation_of_rank_deficient_loadings_is_refused(method):
    A = _simple_structure()[:, :2]
    for bad in (np.column_stack([A, np.zeros(len(A))]), np.column_stack([A, A[:, 1]])):
        with pytest.raises(DataError) as excinfo:
            rotate(bad, method)
        assert "rank 2 < 3 factors" in _one_line(excinfo)
    for orthogonal in ORTHOGONAL:  # well defined: the zero column stays zero
        r = rotate(np.column_stack([A, np.zeros(len(A))]), orthogonal)
        np.testing.assert_allclose(r.loadings @ r.loadings.T, A @ A.T, atol=1e-12)


def test_align_factors_checks_shapes():
    with pytest.raises(DataError, match=r"factor_correlation must be \(2, 2\)"):
        align_factors(np.ones((4, 2)), np.eye(3))
    with pytest.raises(DataError, match=r"rotation_matrix must be \(2, 2\)"):
        align_factors(np.ones((4, 2)), np.eye(2), np.eye(3))


@pytest.mark.parametrize("method", ["varimax", "geomin", "quartimax"])
def test_convergence_warning_when_max_iter_is_reached(real_loadings, method):
    with pytest.warns(ConvergenceWarning, match=f"rotation={method!r} did not converge"):
        r = rotate(real_loadings["breast_cancer"], method, max_iter=1)
    assert not r.converged and r.n_iter == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rotate(real_loadings["breast_cancer"], method).converged
