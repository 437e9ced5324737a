import numpy as np
import pytest

import elbokit


@pytest.fixture(scope="session")
def digits():
    return elbokit.data.load("digits")


def sample_linear_gaussian(n, W, psi, mu, seed=0):
    """Draw n rows of x = W z + mu + noise, z ~ N(0, I), noise ~ N(0, diag(psi))."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, W.shape[1]))
    return z @ W.T + mu + rng.standard_normal((n, W.shape[0])) * np.sqrt(psi)


@pytest.fixture
def fa_problem():
    """A known factor-analysis model with 3 factors in 12 dimensions."""
    rng = np.random.default_rng(42)
    d, L = 12, 3
    W = rng.standard_normal((d, L))
    psi = rng.uniform(0.1, 0.5, d)
    mu = rng.standard_normal(d)
    return W, psi, mu
