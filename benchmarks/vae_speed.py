"""Training throughput of elbokit's VAE against a plain PyTorch loop and against the
arithmetic bound, in one process.

The model is the likelihood benchmark's: 784-300-300-40 MLP encoder, mirrored
decoder, ReLU, Bernoulli likelihood, L_B (analytic KL, one sample), Adam 1e-3,
batch 100, dynamic binarization (pixels redrawn every minibatch), on Fashion-MNIST.

* **ours**: ``elbokit.nn.VAE`` with its defaults and every feature on: progress bar,
  a validation ELBO each epoch (5,000 held-out training rows), a checkpoint each epoch.
* **plain**: the loop a user writes by hand (``torch.bernoulli`` per batch, PyTorch's
  default Adam, ``zero_grad`` / ``backward`` / ``step``), none of those features.
* **bound**: the FLOPs of one training step (forward, and the backward's two matmuls
  per layer, none for the input's gradient) divided by the matmul rate measured at
  each of those shapes in this process, just before: the time the step's matmuls
  alone would take at the rate this machine does them; images/s at that time.

The sides alternate (rounds of ours, plain, bound, then plain, bound, ours, ...) so that
load on the machine hits all alike; the figures are medians over rounds, with ratios
(each round's own, then their median; and, stricter, the median against the fastest
bound measured in any round). Each product of the bound is timed as the median of 5
blocks of 10 calls.

    .venv/bin/python benchmarks/vae_speed.py                  # 2 epochs x 3 rounds
    .venv/bin/python benchmarks/vae_speed.py --activation gated
    .venv/bin/python benchmarks/vae_speed.py --breakdown   # where ours' step time goes
    .venv/bin/python benchmarks/vae_speed.py --with-autograd   # the fused step's lever
    .venv/bin/python benchmarks/vae_speed.py --with-bfloat16   # mixed precision's lever

``--with-bfloat16`` adds ours with ``precision="bfloat16"`` and the bound at bfloat16
matmuls (the same FLOPs over the rate of bfloat16 operands at the same shapes), so that
mixed precision is held against a bound of its own kind as well as float32's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from _results import write_markdown
from elbokit.data import load
from elbokit.nn import VAE


# --------------------------------------------------------------------------- plain loop

class PlainVAE(nn.Module):
    def __init__(self, d, hidden, latent):
        super().__init__()
        sizes = [d, *hidden]
        enc, dec = [], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        for a, b in zip([latent, *hidden[::-1]][:-1], [latent, *hidden[::-1]][1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        self.enc = nn.Sequential(*enc, nn.Linear(hidden[-1], 2 * latent))
        self.dec = nn.Sequential(*dec, nn.Linear(hidden[0], d))

    def elbo(self, x):  # per-sample L_B, (B,)
        mean, logvar = self.enc(x).chunk(2, dim=-1)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        log_lik = -F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = 0.5 * (torch.exp(logvar) + mean**2 - 1 - logvar).sum(-1)
        return log_lik - kl


def fit_plain(X, args, seed):
    torch.manual_seed(seed)
    model = PlainVAE(X.shape[1], args.hidden, args.latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    X = torch.as_tensor(X)
    for _ in range(args.epochs):
        order = torch.randperm(X.shape[0])
        for start in range(0, X.shape[0], args.batch):
            x = torch.bernoulli(X[order[start:start + args.batch]])
            loss = -model.elbo(x).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


# --------------------------------------------------------------------------- ours

def fit_ours(X, V, args, seed, run_dir, autograd=False, precision=None):
    options = {} if precision is None else {"precision": precision}  # None: the default
    vae = VAE(args.latent, hidden=tuple(args.hidden), activation=args.activation,
              batch_size=args.batch, binarize="dynamic", epochs=args.epochs, seed=seed,
              progress=True, fused_step=not autograd, **options)
    return vae.fit(X, validation=V, checkpoint_dir=run_dir)


# --------------------------------------------------------------------------- the bound

def layer_shapes(d, hidden, latent, gated):
    """(n_in, n_out, needs the input's gradient) of every linear map of a step."""
    widen = 2 if gated else 1
    enc = [d, *hidden]
    dec = [latent, *hidden[::-1]]
    shapes = [(a, widen * b, i > 0) for i, (a, b) in enumerate(zip(enc[:-1], enc[1:]))]
    shapes.append((hidden[-1], 2 * latent, True))
    shapes += [(a, widen * b, True) for a, b in zip(dec[:-1], dec[1:])]
    shapes.append((hidden[0], d, True))
    return shapes


def _seconds(a, b, repeats, blocks=5):
    """Seconds per product a @ b: the median over ``blocks`` blocks of ``repeats`` (a
    thread descheduled for a moment slows one block, not the figure)."""
    for _ in range(3):
        a @ b
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        times.append((time.perf_counter() - start) / repeats)
    return statistics.median(times)


def bound_step_seconds(shapes, batch, repeats=10, dtype=torch.float32):
    """The step's matmul FLOPs over the rate measured at each shape: forward (B, in) @
    (in, out), the input's gradient (B, out) @ (out, in), the weight's (out, B) @ (B, in);
    operands of ``dtype``."""
    total, flops = 0.0, 0.0
    for n_in, n_out, grad_in in shapes:
        x, w, g = (torch.randn(*shape).to(dtype)
                   for shape in ((batch, n_in), (n_out, n_in), (batch, n_out)))
        products = [(x, w.t()), (g.t(), x)] + ([(g, w)] if grad_in else [])
        for a, b in products:
            total += _seconds(a, b, repeats)
            flops += 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    return total, flops


# --------------------------------------------------------------------------- breakdown

CATEGORIES = {"matmuls": ("aten::mm", "aten::addmm"),
              "Adam": ("aten::_fused_adam_", "aten::_foreach_add_"),
              "weight average (EMA)": ("aten::lerp_",)}


def breakdown(X, V, args, bound_seconds):
    """Where ours' time goes: one fit under torch.profiler, self time per category, per
    step; the matmuls' share against the bound's time for the same products."""
    from torch.profiler import ProfilerActivity, profile

    steps = args.epochs * -(-len(X) // args.batch)
    with tempfile.TemporaryDirectory() as run_dir, \
            profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        fit_ours(X, V, args, 0, run_dir)
        wall = time.perf_counter() - start
    spent = {name: 0.0 for name in CATEGORIES}
    for event in prof.key_averages():
        for name, ops in CATEGORIES.items():
            if event.key in ops:
                spent[name] += event.self_cpu_time_total / 1e6
    print(f"\nours under the profiler: {1e3 * wall / steps:.2f} ms per step, all included "
          f"(the profiler adds some); the bound's step {1e3 * bound_seconds:.2f} ms")
    for name, seconds in spent.items():
        print(f"  {name}: {1e3 * seconds / steps:.2f} ms per step "
              f"({seconds / wall:.0%} of the time)")
    rest = wall - sum(spent.values())
    print(f"  everything else (elementwise kernels, validation, checkpoints, Python): "
          f"{1e3 * rest / steps:.2f} ms per step ({rest / wall:.0%})")
    print(f"  the matmuls ran at {bound_seconds / (spent['matmuls'] / steps):.0%} of their "
          "isolated rate")


# --------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=30000)
    parser.add_argument("--hidden", default="300,300")
    parser.add_argument("--latent", type=int, default=40)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--activation", default="relu", choices=["relu", "gated"],
                        help="ours' hidden layers (the plain loop is ReLU; the bound counts "
                             "ours' FLOPs)")
    parser.add_argument("--with-autograd", action="store_true",
                        help="a fourth side in every round: ours with fused_step=False")
    parser.add_argument("--with-bfloat16", action="store_true",
                        help="two more sides in every round: ours with precision='bfloat16' "
                             "and the bound at bfloat16 matmuls")
    parser.add_argument("--breakdown", action="store_true",
                        help="then one more fit of ours under torch.profiler: time per step "
                             "in matmuls, Adam, EMA and the rest")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    args.hidden = [int(h) for h in args.hidden.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load("fashion-mnist", data_dir=args.data_dir)
    X, V = data.train[5000:5000 + args.train_images], data.train[:5000]
    shapes = layer_shapes(X.shape[1], args.hidden, args.latent, args.activation == "gated")
    print(f"Fashion-MNIST {len(X)} train, {len(V)} validation; MLP {X.shape[1]}-"
          f"{'-'.join(map(str, args.hidden))}-{args.latent} ({args.activation}), batch "
          f"{args.batch}, dynamic binarization, L_B; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.epochs} epochs per fit, {args.rounds} "
          f"rounds; {time.strftime('%Y-%m-%d')}", flush=True)
    # warm-up: the first optimiser of a process imports torch's compiler stack (~1 s)
    fit_plain(X[:256], argparse.Namespace(**{**vars(args), "epochs": 1}), 0)
    VAE(4, epochs=1, progress=False).fit(X[:256])
    speed = {"ours": [], "plain": [], "bound": []}
    gflops = []
    sides = ["ours", "plain", "bound"]
    if args.with_autograd:  # the fused step's lever, measured in the same rounds
        speed["autograd"] = []
        sides.insert(2, "autograd")
    if args.with_bfloat16:  # mixed precision's lever, and a bound of its own kind
        speed["bfloat16"], speed["bound-bf16"] = [], []
        sides += ["bfloat16", "bound-bf16"]
    for r in range(args.rounds):
        for name in sides[r % len(sides):] + sides[:r % len(sides)]:
            if name in ("bound", "bound-bf16"):
                dtype = torch.bfloat16 if name == "bound-bf16" else torch.float32
                seconds, flops = bound_step_seconds(shapes, args.batch, dtype=dtype)
                speed[name].append(args.batch / seconds)
                if name == "bound":
                    gflops.append(flops / seconds / 1e9)
                print(f"round {r + 1} {name}: {speed[name][-1]:8.0f} images/s (matmuls at "
                      f"{flops / seconds / 1e9:.0f} GFLOP/s, {flops / args.batch / 1e6:.2f} "
                      "MFLOP per image)", flush=True)
                continue
            start = time.perf_counter()
            if name in ("ours", "autograd", "bfloat16"):
                with tempfile.TemporaryDirectory() as run_dir:
                    fit_ours(X, V, args, r, run_dir, autograd=name == "autograd",
                             precision="bfloat16" if name == "bfloat16" else None)
            else:
                fit_plain(X, args, r)
            seconds = time.perf_counter() - start
            speed[name].append(len(X) * args.epochs / seconds)
            print(f"round {r + 1} {name}: {speed[name][-1]:8.0f} images/s ({seconds:.1f} s)",
                  flush=True)
    med = {k: statistics.median(v) for k, v in speed.items()}
    # ratios within each round (the sides ran back to back), then their median
    versus_plain = statistics.median(o / p for o, p in zip(speed["ours"], speed["plain"]))
    of_bound = statistics.median(o / b for o, b in zip(speed["ours"], speed["bound"]))
    plain_of_bound = statistics.median(p / b for p, b in zip(speed["plain"], speed["bound"]))
    ours = "elbokit (checkpoints, validation, progress bar)"
    table = (f"| | images/s (median) | ratio (median of the rounds') |\n|---|---|---|\n"
             f"| arithmetic bound | {med['bound']:.0f} | 1 |\n"
             f"| {ours} | {med['ours']:.0f} | "
             f"{of_bound:.2f} of the bound ({med['ours'] / max(speed['bound']):.2f} of the "
             f"fastest round's), {versus_plain:.2f}x plain |\n"
             f"| plain PyTorch loop | {med['plain']:.0f} | {plain_of_bound:.2f} of the bound |")
    print("\n" + table)
    if args.with_autograd:
        fused = statistics.median(o / a for o, a in zip(speed["ours"], speed["autograd"]))
        table += (f"\n| elbokit, fused_step=False (autograd's backward) | {med['autograd']:.0f} | "
                  f"the fused step is {fused:.2f}x it |")
        print(table.splitlines()[-1])
    if args.with_bfloat16:
        of_plain = statistics.median(o / p for o, p in zip(speed["bfloat16"], speed["plain"]))
        of_own = statistics.median(o / b for o, b in zip(speed["bfloat16"], speed["bound-bf16"]))
        of_fp32 = statistics.median(o / b for o, b in zip(speed["bfloat16"], speed["bound"]))
        strict = med["bfloat16"] / max(speed["bound-bf16"])
        rows = (f"| elbokit, precision='bfloat16' | {med['bfloat16']:.0f} | {of_plain:.2f}x "
                f"plain, {of_own:.2f} of the bfloat16 bound ({strict:.2f} of the fastest "
                f"round's), {of_fp32:.2f} of float32's |\n"
                f"| arithmetic bound at bfloat16 matmuls | {med['bound-bf16']:.0f} | "
                f"{statistics.median(b / f for b, f in zip(speed['bound-bf16'], speed['bound'])):.2f}"
                " x float32's |")
        table += "\n" + rows
        print(rows)
    rate = (f"matmul rate at the layer shapes: {statistics.median(gflops):.0f} GFLOP/s; "
            f"{torch.get_num_threads()} torch threads")
    print(rate)
    write_markdown("vae_speed", "Training speed against a plain PyTorch loop and the arithmetic "
                   "bound", [table], setup=f"Fashion-MNIST {len(X)} train images; {rate}.",
                   order=8)
    if args.breakdown:
        breakdown(X, V, args, args.batch / med["bound"])


if __name__ == "__main__":
    main()
