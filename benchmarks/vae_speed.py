"""Speed and quality of elbokit's VAE against a plain PyTorch loop.

Both train the identical model on Fashion-MNIST: 784-400-20 MLP encoder, 20-400-784
MLP decoder, ReLU, Bernoulli likelihood on the [0, 1] intensities, analytic KL (L_B,
one sample), Adam at 1e-3, batch 128. Ours uses PyTorch's fused Adam kernel; the plain loop uses
PyTorch's default Adam unless ``--plain-fused``, which isolates elbokit's own
overhead. Ours runs with every feature on: progress bar,
a validation ELBO each epoch (on 5,000 held-out training rows), a checkpoint each
epoch. The plain loop has none of them. The two alternate in one process (rounds of
ours, plain, plain, ours, ...) so that load on the machine hits both alike; the
throughput is training images per second of wall-clock ``fit`` time.

    .venv/bin/python benchmarks/vae_speed.py --epochs 2 --rounds 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from elbokit.data import load
from elbokit.nn import VAE


# --------------------------------------------------------------------------- plain loop

class PlainVAE(nn.Module):
    def __init__(self, d=784, hidden=400, latent=20):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def elbo(self, x):  # per-sample L_B, (B,)
        mean, logvar = self.enc(x).chunk(2, dim=-1)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        log_lik = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (torch.exp(logvar) + mean**2 - 1 - logvar).sum(-1)
        return log_lik - kl


def fit_plain(X, epochs, seed, device, fused=False):
    torch.manual_seed(seed)
    model = PlainVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    X = torch.as_tensor(X, device=device)
    for _ in range(epochs):
        order = torch.randperm(X.shape[0], device=device)
        for start in range(0, X.shape[0], 128):
            loss = -model.elbo(X[order[start:start + 128]]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


@torch.no_grad()
def plain_test_elbo(model, X, device):
    torch.manual_seed(0)
    X = torch.as_tensor(X, device=device)
    return float(torch.cat([model.elbo(X[i:i + 4096]) for i in range(0, len(X), 4096)]).mean())


# --------------------------------------------------------------------------- ours

def fit_ours(X, V, epochs, seed, device, run_dir):
    vae = VAE(20, hidden=(400,), likelihood="bernoulli", epochs=epochs, batch_size=128, lr=1e-3,
              seed=seed, device=device, progress=True)
    return vae.fit(X, validation=V, checkpoint_dir=run_dir)


# --------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--plain-fused", action="store_true",
                        help="give the plain loop PyTorch's fused Adam too (ours uses it)")
    args = parser.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    data = load("fashion-mnist", data_dir=args.data_dir)
    X, V, T = data.train[5000:], data.train[:5000], data.test
    print(f"Fashion-MNIST: {len(X)} train, {len(V)} validation, {len(T)} test; device {device}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.epochs} epochs per fit, {args.rounds} rounds; plain Adam: "
          f"{'fused' if args.plain_fused else 'default (for-loop)'}, ours: fused")
    # warm-up: the first optimiser of a process imports torch's compiler stack (~1 s)
    fit_plain(X[:256], 1, 0, device)
    VAE(20, epochs=1, progress=False, device=device).fit(X[:256])
    speed = {"ours": [], "plain": []}
    elbo = {"ours": [], "plain": []}
    for r in range(args.rounds):
        order = ("ours", "plain") if r % 2 == 0 else ("plain", "ours")
        for name in order:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            if name == "ours":
                with tempfile.TemporaryDirectory() as run_dir:
                    model = fit_ours(X, V, args.epochs, r, device, run_dir)
            else:
                model = fit_plain(X, args.epochs, r, device, args.plain_fused)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            speed[name].append(len(X) * args.epochs / seconds)
            value = model.score(T) if name == "ours" else plain_test_elbo(model, T, device)
            elbo[name].append(value)
            print(f"round {r + 1} {name:5s}: {speed[name][-1]:8.0f} images/s "
                  f"({seconds:.1f} s), test ELBO {value:.2f} nats")
    ours, plain = statistics.median(speed["ours"]), statistics.median(speed["plain"])
    print(f"\nimages/s (median over rounds): ours {ours:.0f}, plain {plain:.0f}, "
          f"ratio ours/plain {ours / plain:.3f}")
    e_ours, e_plain = float(np.mean(elbo["ours"])), float(np.mean(elbo["plain"]))
    print(f"test ELBO after {args.epochs} epochs (mean over rounds): ours {e_ours:.2f}, "
          f"plain {e_plain:.2f}, difference {e_ours - e_plain:+.2f} nats "
          f"({-e_ours / (784 * math.log(2)):.4f} vs {-e_plain / (784 * math.log(2)):.4f} "
          "bits/dim)")


if __name__ == "__main__":
    main()
