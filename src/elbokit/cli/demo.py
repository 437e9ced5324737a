"""``elbokit demo``: the main job on the embedded digits data (``make demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from .common import format_table

DEMO_LATENT = 10


@app.command("demo")
def demo(out: Annotated[Path, typer.Option("--out", help="Directory for the runs.")] = Path(
             "runs/demo"),
         latent: Annotated[int, typer.Option("--latent")] = DEMO_LATENT):
    """Fit PCA, PPCA, FA and the linear autoencoder on digits; print held-out log-likelihoods."""
    from .. import data as data_module
    from ..io import atomic_write_json
    from ..models import load_model
    from ..plots import image_grid
    from ..runs import fit_and_record, make_classical

    dataset = data_module.load("digits")
    rows, summary = [], {}
    for kind in ("pca", "ppca", "fa", "linear-ae"):
        model = make_classical(kind, latent, seed=0)
        metrics = fit_and_record(model, dataset, out / kind, spec="digits", overwrite=True)
        reloaded = load_model(out / kind)  # the saved model is the one we report
        image_grid(reloaded.sample(64, random_state=0), dataset.image_shape,
                   out / kind / "samples.png", title=f"{kind} samples")
        rows.append([kind, metrics["train_loglike"], metrics["test_loglike"],
                     metrics["test_bits_per_dim"], metrics["fit_seconds"], metrics["iterations"]])
        summary[kind] = metrics
    atomic_write_json(out / "summary.json", summary)
    typer.echo(f"digits: {dataset.train.shape[0]} train / {dataset.test.shape[0]} test images, "
               f"8x8 in [0, 1], L = {latent}")
    typer.echo(format_table(["model", "train log p(x)", "test log p(x)", "test bits/dim",
                             "fit s", "iters"], rows))
    typer.echo("log p(x) in nats/sample (exact, closed form). Runs saved under "
               f"{out}/<model>/ (model, metrics.json, samples.png).")
