"""VAE priors on binarized digits: standard N(0, I), a learned mixture (mog) and the
VampPrior, same network and epochs; importance-sampled log-likelihood and ELBO on the
test rows (nats/image), fit seconds, and the GMM sampler's fit cost.

    .venv/bin/python benchmarks/priors.py [--epochs 10] [--latent 4] [--components 10]
        [--k 200] [--data digits]

A small check that runs in about a minute on 2 busy cores; the same-time comparison
on Fashion-MNIST belongs in benchmarks/likelihood.py.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--latent", type=int, default=4)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from elbokit.data import load
    from elbokit.nn import VAE

    data = load(args.data)
    train = (data.train > 0.5).astype(np.float32)
    test = (data.test > 0.5).astype(np.float32)
    print(f"{'prior':<10}{'test log p(x)':>14}{'test ELBO':>11}{'fit s':>8}")
    for prior in ("standard", "mog", "vamp"):
        vae = VAE(args.latent, prior=prior, prior_components=args.components, hidden=(64,),
                  epochs=args.epochs, batch_size=128, seed=args.seed, progress=False,
                  gmm_components=0)
        start = time.perf_counter()
        vae.fit(train)
        seconds = time.perf_counter() - start
        ll = vae.log_likelihood_samples(test, n_importance=args.k).mean()
        elbo = vae.elbo(test, "b", n_samples=10).mean()
        print(f"{prior:<10}{ll:>14.2f}{elbo:>11.2f}{seconds:>8.1f}")
    start = time.perf_counter()
    vae._fit_gmm(train, args.seed)
    print(f"GMM sampler fit (10 components, {train.shape[0]} codes): "
          f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
