"""Colour images by the documented default command: bits/dim of 8-bit 32x32 patches.

2,400 patches of 32x32 pixels are cut at seeded random places (numpy
``default_rng(0)``) from scikit-learn's two sample photographs
(``sklearn.datasets.load_sample_images``: china.jpg and flower.jpg, 427x640, offline)
and written as a folder of PNG files; the documented image command fits them,

    elbokit fit vae --data FOLDER --arch conv --out RUN

with every default (likelihood "auto", which resolves to the discretized logistic for
8-bit data; epochs "auto", enough for 1,000 steps), and the held-out 20% of the patches
(the fit's own split) are scored: bits/dim = -log p(x) / (3072 ln 2) of the 8-bit values,
by the ELBO (the run's metrics.json) and by importance sampling (``--k`` samples, the
IWAE bound). Two more rows fit the same folder with 10 epochs, under the logistic and
under the Bernoulli likelihood (the defaults before this benchmark), for the mean squared
error of the reconstructions; the Bernoulli row has no bits/dim (its log p of intensities
is a cross-entropy). A picture of held-out patches and their reconstructions by each
fit is written to docs/images/colour-reconstructions.png.

    .venv/bin/python benchmarks/colour.py            # ~5 min on 2 cores
    .venv/bin/python benchmarks/colour.py --k 1000
    .venv/bin/python benchmarks/colour.py --work DIR   # score the runs in DIR, fit the rest

Published plain conv VAEs on CIFAR-10 (32x32 colour, 50,000 training images) reach about
4.5-5.5 bits/dim; these patches are other data (two photographs, 1,920 training
patches), so the figures compare in kind only (docs/guide/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _results import write_table

ROOT = Path(__file__).resolve().parent.parent
PICTURE = ROOT / "docs" / "images" / "colour-reconstructions.png"
N_PATCHES, SIDE = 2400, 32


def cut_patches(n: int = N_PATCHES, side: int = SIDE, seed: int = 0) -> np.ndarray:
    """n patches (n, side, side, 3) of uint8 at seeded random places of the two images."""
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    rng = np.random.default_rng(seed)
    patches = []
    for i in range(n):
        image = images[i % len(images)]
        top = rng.integers(0, image.shape[0] - side + 1)
        left = rng.integers(0, image.shape[1] - side + 1)
        patches.append(image[top:top + side, left:left + side])
    return np.stack(patches)


def write_folder(patches: np.ndarray, folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, patch in enumerate(patches):
        Image.fromarray(patch).save(folder / f"patch{i:04d}.png")
    return folder


def fit(folder: Path, out: Path, *extra: str) -> float:
    """The documented command (plus ``extra`` options) into ``out`` (a run already there,
    from an earlier ``--work``, is kept); the fit's seconds, as metrics.json records them."""
    if not (out / "metrics.json").is_file():
        command = [str(Path(sys.executable).parent / "elbokit"), "fit", "vae", "--data",
                   str(folder), "--arch", "conv", "--out", str(out), "--no-progress", *extra]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())["fit_seconds"]


def score(run: Path, folder: Path, k: int) -> dict:
    """The run's held-out figures: ELBO and IS bits/dim, reconstruction MSE."""
    from elbokit import data
    from elbokit.nn import VAE

    model = VAE.load(run)
    metrics = json.loads((run / "metrics.json").read_text())
    test = data.load(str(folder), seed=0).test  # the fit's split (seed 0, 20%)
    d = test.shape[1]
    result = {"likelihood": model.architecture_.likelihood,
              "epochs": model.training_.epochs, "rows": test.shape[0],
              "epoch_seconds": float(np.median([h["seconds"] for h in model.history_])),
              "mse": float(np.mean(np.sum((model.reconstruct(test) - test) ** 2, axis=1))) / d}
    if "test_bits_per_dim" in metrics:
        ll = model.log_likelihood_samples(test, n_importance=k)
        result.update(elbo_bpd=metrics["test_bits_per_dim"],
                      is_bpd=float(-np.mean(ll) / (d * np.log(2))))
    return result, model, test


def picture(models: list, names: list[str], test: np.ndarray, path: Path, n: int = 12) -> None:
    """Held-out patches (top row) and their reconstructions by each model (a row each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [test[:n]] + [model.reconstruct(test[:n]) for model in models]  # (n, 3*32*32)
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, 1.05 * len(rows)))
    for r, images in enumerate(rows):
        for c, row in enumerate(images):
            axes[r, c].imshow(np.clip(row.reshape(3, SIDE, SIDE).transpose(1, 2, 0), 0, 1))
            axes[r, c].axis("off")
        axes[r, 0].set_title(["held-out patches", *names][r], loc="left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    from PIL import Image

    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)  # 270 -> 80 kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=100, help="importance samples per patch")
    parser.add_argument("--folder", type=Path, default=None, help="where to write the PNGs")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the runs go (runs already there are scored, not refitted)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="elbokit-colour-"))
    folder = write_folder(cut_patches(), args.folder or work / "patches")
    runs = [("default command", ()), ("--epochs 10", ("--epochs", "10")),
            ("--epochs 10 --likelihood bernoulli", ("--epochs", "10", "--likelihood",
                                                    "bernoulli"))]
    rows, models = [], []
    for name, extra in runs:
        seconds = fit(folder, work / f"run{len(rows)}", *extra)
        result, model, test = score(work / f"run{len(rows)}", folder, args.k)
        models.append(model)
        na = "n/a (not a density)"
        rows.append([name, result["likelihood"], result["epochs"], f"{seconds:.0f}",
                     f"{result['epoch_seconds']:.2f}",
                     f"{result['elbo_bpd']:.3f}" if "elbo_bpd" in result else na,
                     f"{result['is_bpd']:.3f}" if "is_bpd" in result else na,
                     f"{result['mse']:.4f}"])
        print(rows[-1], flush=True)
    picture(models, [f"{name}: reconstructions" for name, _ in runs], test, PICTURE)
    columns = ["fit", "likelihood", "epochs", "fit seconds", "median epoch seconds",
               "test bits/dim (ELBO)",
               f"test bits/dim (IS, k={args.k})", "reconstruction MSE per pixel"]
    write_table("colour", "Colour 32x32 patches: the default image command", columns, rows,
                out=ROOT / "benchmarks" / "results" / "colour.json", order=60,
                setup=f"{N_PATCHES} patches of {SIDE}x{SIDE} from scikit-learn's sample "
                      "images (seeded), a PNG folder; `elbokit fit vae --data FOLDER --arch "
                      f"conv` (80/20 split, seed 0); {test.shape[0]} held-out patches.",
                notes="bits/dim of the 8-bit values (discretized logistic). Published plain "
                      "conv VAEs on CIFAR-10 report about 4.5-5.5 bits/dim; the data differ "
                      "(two photographs, 1,920 training patches).")


if __name__ == "__main__":
    main()
