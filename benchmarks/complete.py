"""Completing images with a region hidden (issue 34 item 2): how well a VAE predicts the
hidden pixels, log p(x_mis | x_obs) = log p(x) - log p(x_obs) of the true test image
(nats per image, importance sampling with k draws for each term), and a figure of answers
drawn from p(x_mis | x_obs) (``VAE.complete``).

Binary images (the test set binarized once, numpy ``default_rng(12345)``): digits (8 x 8,
``elbokit.data.load("digits")``, the VAE's defaults with ``binarize="dynamic"``, 10
latents) and Fashion-MNIST (28 x 28, the long run of ``benchmarks/recipe.py`` restored
from its run directory, or a fit of ``--minutes``). References with an exact
conditional: independent pixels (each pixel's training mean, x_obs ignored) and a
mixture of K product-Bernoullis fitted by EM (p(x_mis | x_obs) = sum_k p(k | x_obs)
prod_j Bern(x_j | mu_kj) over the hidden j), K chosen on validation rows (Fashion-MNIST:
the Exemplar protocol's; digits: the last 300 training rows), then fitted on every
training row.

    .venv/bin/python benchmarks/complete.py digits
    .venv/bin/python benchmarks/complete.py fashion-mnist --run benchmarks/.runs/recipe-vamp50-1207
    # a fresh VAE (the recipe, --minutes of training) instead of a long run's
    .venv/bin/python benchmarks/complete.py fashion-mnist --minutes 10 --test-images 1000

Writes results/complete-<data>-<date>.json and docs/images/completions-<data>.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _results import write_table

REGIONS = ("bottom", "square", "right")
DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
TEST_SEED = 12345
COMPONENTS = (10, 25, 50, 100, 200)  # the mixture's K, chosen on the validation rows


def binarized(X, seed=TEST_SEED):
    return (np.random.default_rng(seed).random(X.shape) < X).astype(np.float64)


class BernoulliMixture:
    """K product-Bernoullis by EM (responsibilities in log space; mu kept in
    [1e-3, 1 - 1e-3]); ``conditional(X, mask)`` the exact log p(x_mis | x_obs)."""

    def __init__(self, k, iterations=60, seed=0):
        self.k, self.iterations, self.seed = k, iterations, seed

    def fit(self, X):
        rng = np.random.default_rng(self.seed)
        n = len(X)
        self.mu = np.clip(X[rng.choice(n, self.k, replace=False)] * 0.5 + 0.25, 1e-3, 1 - 1e-3)
        self.log_pi = np.full(self.k, -np.log(self.k))
        for _ in range(self.iterations):
            r = self._responsibilities(X, np.ones_like(X, bool))
            weight = r.sum(0) + 1e-10
            self.log_pi = np.log(weight / n)
            self.mu = np.clip((r.T @ X + 1.0) / (weight[:, None] + 2.0), 1e-3, 1 - 1e-3)
        return self

    def _joint(self, X, seen):
        """log pi_k + log p(x_seen | k), (n, K)."""
        log_mu, log_not = np.log(self.mu), np.log1p(-self.mu)
        Xs = np.where(seen, X, 0.0)
        not_s = np.where(seen, 1.0 - X, 0.0)
        return self.log_pi + Xs @ log_mu.T + not_s @ log_not.T

    def _responsibilities(self, X, seen):
        joint = self._joint(X, seen)
        return np.exp(joint - np.logaddexp.reduce(joint, axis=1, keepdims=True))

    def log_likelihood(self, X, seen):
        return np.logaddexp.reduce(self._joint(X, seen), axis=1)

    def conditional(self, X, mask):
        return self.log_likelihood(X, np.ones_like(mask)) - self.log_likelihood(X, ~mask)


def independent(train, X, mask):
    """log p(x_mis) under independent pixels (their training means)."""
    mu = np.clip(train.mean(0), 1e-3, 1 - 1e-3)
    values = X * np.log(mu) + (1 - X) * np.log1p(-mu)
    return np.where(mask, values, 0.0).sum(1)


def vae_conditional(vae, X, mask, k, seed=0):
    hidden = np.where(mask, np.nan, X)
    full = vae.log_likelihood_samples(X, n_importance=k, random_state=seed)
    seen = vae.log_likelihood_samples(hidden, n_importance=k, random_state=seed)
    return np.asarray(full, np.float64) - np.asarray(seen, np.float64)


def load(name, args):
    """train (intensities), validation (binary), test (binary), image shape, the VAE and
    how it was made."""
    from elbokit.data import load as load_data
    from elbokit.nn import VAE

    if name == "digits":
        ds = load_data("digits")
        train, test = ds.train, binarized(ds.test)
        validation = None  # the mixture's K: chosen on the last 300 training rows held out
        start = time.perf_counter()
        vae = VAE(10, binarize="dynamic", progress=False).fit(train)
        made = (f"VAE(10, binarize='dynamic'), the other settings the defaults: "
                f"{len(vae.history_)} epochs, {time.perf_counter() - start:.0f} s")
        return train, validation, test, (8, 8), vae, made
    from recipe import fit_recipe, load_data as recipe_data, prior_options

    train, held_out, test = recipe_data(None, None, args.test_images)
    test = test.astype(np.float64)
    validation = binarized(held_out[:2000], seed=1)
    if args.run:  # restored: the best validation epoch's averaged weights, no training
        options = prior_options(args.prior, None)
        vae = fit_recipe(train, held_out, 120.0, Path(args.run), resume=True, **options)
        made = (f"the long run {Path(args.run).name} restored (prior {args.prior}, "
                f"{len(vae.history_)} epochs)")
    else:  # checkpointed: a rerun restores the fit instead of training again
        from recipe import RUNS

        run = RUNS / f"complete-recipe-{args.minutes:g}min"
        vae = fit_recipe(train, held_out, args.minutes, run, (run / "checkpoint.json").exists())
        made = f"the recipe, {args.minutes:g} minutes, {len(vae.history_)} epochs"
    return train, validation, test, (28, 28), vae, made


def main():
    from elbokit.nn._impute import region_mask
    from elbokit.plots import completions_figure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=["digits", "fashion-mnist"])
    parser.add_argument("--run", default=None, help="fashion-mnist: a recipe.py long run")
    parser.add_argument("--prior", default="vamp", help="that run's prior")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--k", type=int, default=1000, help="importance samples per term")
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, validation, test, shape, vae, made = load(args.data, args)
    test = test[:args.test_images]
    print(f"{args.data}: {made}; {len(test)} test images, k = {args.k}", flush=True)
    binary_train = binarized(train, seed=2)
    fit_rows = binary_train
    if validation is None:  # held out of the training rows for the choice of K only
        fit_rows, validation = binary_train[:-300], binary_train[-300:]
    full = np.ones_like(validation, bool)
    scores = {K: BernoulliMixture(K).fit(fit_rows).log_likelihood(validation, full).mean()
              for K in COMPONENTS}
    K = max(scores, key=scores.get)
    mixture = BernoulliMixture(K).fit(binary_train)
    print(f"mixture of Bernoullis: K = {K} (validation log p {scores[K]:.2f})", flush=True)
    rows = []
    for region in REGIONS:
        mask = region_mask(region, test.shape, shape)
        start = time.perf_counter()
        ours = vae_conditional(vae, test, mask, args.k)
        seconds = time.perf_counter() - start
        theirs = mixture.conditional(test, mask)
        alone = independent(binary_train, test, mask)
        diff = ours - theirs
        se = lambda v: v.std(ddof=1) / np.sqrt(len(v))  # noqa: E731
        rows.append([region, int(mask[0].sum()), f"{-ours.mean():.2f} +- {se(ours):.2f}",
                     f"{-theirs.mean():.2f}", f"{-alone.mean():.2f}",
                     f"{-diff.mean():+.2f} +- {se(diff):.2f}", f"{seconds:.0f}"])
        print(" | ".join(map(str, rows[-1])), flush=True)
    DOCS_IMAGES.mkdir(exist_ok=True)
    figure = DOCS_IMAGES / f"completions-{args.data}.png"
    completions_figure(vae, test, shape, figure, n=6, n_draws=7, region="bottom")
    print(f"figure written to {figure}")
    write_table(f"complete-{args.data}",
                f"Completing {args.data} test images: the hidden region's log p(x_mis | x_obs)",
                ["region hidden", "pixels hidden", "VAE: -log p(x_mis | x_obs) (nats)",
                 f"mixture of {K} Bernoullis", "independent pixels",
                 "VAE minus mixture (paired)", "VAE scoring (s)"], rows,
                setup=f"{made}; {len(test)} binarized test images; each term by importance "
                      f"sampling with k = {args.k}; {torch.get_num_threads()} thread(s). "
                      "Lower is better; the references' conditionals are exact.",
                order=46)


if __name__ == "__main__":
    main()
