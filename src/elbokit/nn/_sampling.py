"""The VAE's GMM sampler (pythae's; :class:`GMMSampler`, a part of the VAE): a
Gaussian mixture (scikit-learn's
``GaussianMixture``, full covariances) fitted after training to the posterior means of
up to GMM_ROWS training rows, kept in the network's ``gmm_*`` buffers; it follows the
aggregate posterior q(z) = E_x q(z|x), where the decoder was trained."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..exceptions import ParameterError

GMM_ROWS = 10000  # training rows whose codes the GMM sampler is fitted to (a seeded subset)


class GMMSampler:
    """``sample(sampler="gmm")``'s mixture, fitted after training."""

    def _fit_gmm(self, X, seed: int) -> None:
        """The GMM sampler fitted to the posterior means of (up to 10000) training rows."""
        fit_gmm(self.model_, self.encode(gmm_rows(X, seed)).astype(np.float64), seed)

    @property
    def has_gmm_sampler_(self) -> bool:
        """Whether ``sample(sampler="gmm")`` has a fitted mixture to draw from."""
        self._check_fitted()
        return has_gmm(self.model_)

    def _gmm_sample(self, n: int, generator) -> torch.Tensor:
        if not self.has_gmm_sampler_:
            raise ParameterError("this VAE has no fitted GMM sampler (gmm_components=0, or "
                                 "saved before it existed); refit with gmm_components > 0")
        return sample_gmm(self.model_, n, generator)



def fit_gmm(network, codes: np.ndarray, seed: int) -> None:
    """Fit the network's ``config.gmm_components`` mixture to the codes (n, L) and set
    its buffers (components past n weigh 0); degenerate codes leave it unfitted."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    n = network.config.gmm_components
    k = min(n, codes.shape[0])
    gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=seed)
    try:
        # one thread: k-means' OpenMP threads beside torch's ran 45x slower on 2 busy
        # cores (60 s against 1.3 s for 10000 codes of 20 dimensions)
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # ConvergenceWarning: any fit is usable
            gmm.fit(codes)
    except (ValueError, np.linalg.LinAlgError):  # degenerate codes: no GMM sampler
        return
    device = network.gmm_weights.device
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
    with torch.no_grad():
        network.gmm_weights.zero_()
        network.gmm_means.zero_()
        network.gmm_scale_tril.zero_()
        network.gmm_weights[:k] = as_tensor(gmm.weights_)
        network.gmm_means[:k] = as_tensor(gmm.means_)
        network.gmm_scale_tril[:k] = as_tensor(np.linalg.cholesky(gmm.covariances_))
        network.gmm_scale_tril[k:n] = torch.eye(codes.shape[1], device=device)


def gmm_rows(X: np.ndarray, seed: int) -> np.ndarray:
    """The training rows the mixture is fitted to: all, or a seeded GMM_ROWS of them."""
    if X.shape[0] <= GMM_ROWS:
        return X
    return X[np.sort(np.random.default_rng(seed).choice(X.shape[0], GMM_ROWS, replace=False))]


def has_gmm(network) -> bool:
    return bool(network.config.gmm_components) and bool(network.gmm_weights.sum() > 0)


def sample_gmm(network, n: int, generator) -> torch.Tensor:
    """n draws z (n, L) from the fitted mixture."""
    k = torch.multinomial(network.gmm_weights, n, replacement=True, generator=generator)
    eps = torch.randn((n, network.gmm_means.shape[1]), generator=generator,
                      device=network.gmm_means.device)
    return network.gmm_means[k] + (network.gmm_scale_tril[k] @ eps.unsqueeze(-1)).squeeze(-1)
