"""Time TensorBoardCallback's work per epoch (scalars, the probe's ELBO terms, image
grids every epoch) against the epoch's training time: a 784-400-20 VAE on 20,000
Fashion-MNIST images, 3 epochs. Run: .venv/bin/python benchmarks/callback_overhead.py
(writes ./tb)."""
import time, sys, numpy as np
from _results import write_table
from elbokit.data import load
from elbokit.nn import VAE, TensorBoardCallback
from elbokit.nn.callbacks import Callback
d = load("fashion-mnist")
X, V = d.train[:20000], d.test[:2000]
class Timed(Callback):
    def __init__(self, inner): self.inner, self.t = inner, []
    def on_train_start(self, *a): self.inner.on_train_start(*a)
    def on_epoch_end(self, *a):
        s = time.perf_counter(); self.inner.on_epoch_end(*a); self.t.append(time.perf_counter() - s)
    def on_train_end(self, *a): self.inner.on_train_end(*a)
tb = Timed(TensorBoardCallback("tb", images_every=1))
vae = VAE(20, hidden=(400,), epochs=3, progress=False, binarize="dynamic")
vae.fit(X, validation=V, callbacks=[tb])
ep = [h["seconds"] for h in vae.history_]
print("epoch seconds", np.round(ep, 2), "callback seconds per epoch (images every epoch)", np.round(tb.t, 3))
share = np.array(tb.t) / np.array(ep)
print("overhead share", np.round(share, 4))
write_table("callback_overhead", "Cost of the TensorBoard callback", ["measure", "value"],
            [["callback time per epoch", f"{min(tb.t):.1f}-{max(tb.t):.1f} s"],
             ["epoch time", f"{min(ep):.0f}-{max(ep):.0f} s"],
             ["share of the epoch", f"{100 * share.min():.1f}-{100 * share.max():.1f}%"]],
            setup="`TensorBoardCallback` with images every epoch; 784-400-20 VAE, 20,000 "
                  "Fashion-MNIST images, 3 epochs.", order=15)
