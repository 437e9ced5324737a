import numpy as np
from scipy.linalg import subspace_angles

from elbokit import PCA, PPCA, LinearAutoencoder
from elbokit.linear.linear_autoencoder import reconstruction_loss_and_grad


def test_learns_the_principal_subspace_on_digits(digits):
    L = 10
    ae = LinearAutoencoder(L, random_state=0).fit(digits.train)
    pca = PCA(L).fit(digits.train)
    assert np.max(subspace_angles(ae.weights_.T, pca.components_.T)) < 0.05
    # the loss went down to PCA's reconstruction error
    Xc = digits.train - pca.mean_
    pca_error = np.mean(np.sum((Xc - Xc @ pca.components_.T @ pca.components_) ** 2, axis=1))
    assert ae.loss_[-1] < pca_error * (1 + 1e-4)
    assert ae.loss_[-1] < ae.loss_[0]
    # the probabilistic reading is then PPCA
    assert abs(ae.score(digits.test) - PPCA(L).fit(digits.train).score(digits.test)) < 1e-3


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 6))
    S = A.T @ A / 30
    W = rng.standard_normal((2, 6)) * 0.3
    _, grad = reconstruction_loss_and_grad(W, S)
    eps = 1e-6
    numeric = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[idx] = eps
        numeric[idx] = (reconstruction_loss_and_grad(W + E, S)[0]
                        - reconstruction_loss_and_grad(W - E, S)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_loss_is_the_mean_reconstruction_error():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 5))
    Xc = X - X.mean(axis=0)
    W = rng.standard_normal((2, 5))
    loss, _ = reconstruction_loss_and_grad(W, Xc.T @ Xc / 50)
    assert np.isclose(loss, np.mean(np.sum((Xc - Xc @ W.T @ W) ** 2, axis=1)))
