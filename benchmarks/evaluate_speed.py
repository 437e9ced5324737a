"""Throughput of the importance-sampled log-likelihood against its arithmetic bound.

    .venv/bin/python benchmarks/evaluate_speed.py [--n-test 10000] [--k 5000]
    .venv/bin/python benchmarks/evaluate_speed.py --activation gated
    .venv/bin/python benchmarks/evaluate_speed.py --hidden 400 --latent 20

Times ``elbokit.evaluate.log_likelihood`` with k importance samples on Fashion-MNIST
test images for the likelihood benchmark's 784-300-300-40 VAE (Bernoulli decoder; ReLU
or gated layers), and compares it with the
bound set by arithmetic alone: decoder FLOPs per sample x samples / the matmul FLOP
rate of this machine, measured in the same run on the decoder's own layer shapes.
Target (issue 4): at least 50% of that bound.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _results import write_table


def matmul_rate(rows: int, shapes, repeats: int = 7) -> float:
    """FLOP/s of torch.mm on the decoder's layer shapes (float32), median of repeats."""
    import torch

    torch.manual_seed(0)
    mats = [(torch.randn(rows, a), torch.randn(a, b)) for a, b in shapes]
    flops = sum(2.0 * rows * a * b for a, b in shapes)
    for x, w in mats:  # warm up
        x @ w
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for x, w in mats:
            x @ w
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (speed only)")
    parser.add_argument("--hidden", default="300,300")
    parser.add_argument("--latent", type=int, default=40)
    parser.add_argument("--activation", default="relu", choices=["relu", "gated"])
    args = parser.parse_args()
    hidden = [int(h) for h in args.hidden.split(",")]

    import torch

    import elbokit
    from elbokit import evaluate

    ds = elbokit.data.load("fashion-mnist")
    vae = elbokit.VAE(args.latent, likelihood="bernoulli", hidden=tuple(hidden),
                      activation=args.activation, epochs=args.epochs, seed=0,
                      progress=False).fit(ds.train)
    X = ds.test[: args.n_test]
    d, widen = X.shape[1], 2 if args.activation == "gated" else 1
    dec = [args.latent, *hidden[::-1]]
    shapes = [(a, widen * b) for a, b in zip(dec[:-1], dec[1:])] + [(hidden[0], d)]
    enc = [d, *hidden]
    enc_shapes = [(a, widen * b) for a, b in zip(enc[:-1], enc[1:])] + \
        [(hidden[-1], 2 * args.latent)]
    decoder_flops = sum(2.0 * a * b for a, b in shapes)  # per latent sample
    encoder_flops = sum(2.0 * a * b for a, b in enc_shapes)  # per data point
    total_flops = X.shape[0] * (args.k * decoder_flops + encoder_flops)
    rate = matmul_rate(16384, shapes)
    print(f"MLP {d}-{args.hidden.replace(',', '-')}-{args.latent} ({args.activation}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"matmul rate on the decoder's shapes: {rate / 1e9:.1f} GFLOP/s")
    start = time.perf_counter()
    ll = evaluate.log_likelihood(vae, X, n_importance=args.k, progress=True)
    seconds = time.perf_counter() - start
    rate_after = matmul_rate(16384, shapes)
    rate = max(rate, rate_after)  # the faster measurement gives the stricter bound
    bound = total_flops / rate
    samples = X.shape[0] * args.k
    print(f"test log p(x) = {ll.mean:.2f} +- {ll.stderr:.2f} nats (k = {args.k}, "
          f"{X.shape[0]} images)")
    print(f"{'':<28}{'seconds':>10}{'samples/s':>14}")
    print(f"{'log_likelihood (measured)':<28}{seconds:>10.1f}{samples / seconds:>14,.0f}")
    print(f"{'arithmetic bound':<28}{bound:>10.1f}{samples / bound:>14,.0f}")
    print(f"achieved / bound = {bound / seconds:.2f} (target >= 0.50); "
          f"matmul rate {rate / 1e9:.1f} GFLOP/s, "
          f"{decoder_flops:,.0f} decoder FLOPs per sample")
    arch = f"{d}-{args.hidden.replace(',', '-')}-{args.latent}"
    default = arch == "784-400-20" and args.activation == "relu"
    write_table("evaluate_speed" if default else "evaluate_speed-architectures",
                "Importance-sampled log-likelihood throughput" if default else
                "Importance-sampled log-likelihood throughput, the likelihood benchmark's "
                "architectures",
                ["", "seconds", "samples/s"],
                [["`evaluate.log_likelihood` (measured)", f"{seconds:.1f}", f"{samples / seconds:,.0f}"],
                 [f"arithmetic bound (decoder FLOPs x samples / matmul rate measured in the same "
                  f"run, {rate / 1e9:.1f} GFLOP/s)", f"{bound:.1f}", f"{samples / bound:,.0f}"]],
                setup=f"k = {args.k} on {X.shape[0]} Fashion-MNIST test images, {arch} VAE "
                      f"({args.activation}), Bernoulli decoder, {torch.get_num_threads()} threads.",
                notes=f"**{bound / seconds:.2f} of the arithmetic bound** (target 0.50).",
                order=10)


if __name__ == "__main__":
    main()
