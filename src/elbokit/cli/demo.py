"""``elbokit demo``: the main job on the embedded digits data (``make demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import app
from .common import Threads, apply_threads, format_table

DEMO_LATENT = 10
DEMO_VAE = dict(likelihood="gaussian", hidden=(128,), epochs=40, batch_size=64, lr=2e-3,
                validation_fraction=0.0)  # the README table: all 1438 rows, 40 epochs


@app.command("demo")
def demo(out: Annotated[Path, typer.Option("--out", help="Directory for the runs.")] = Path(
             "runs/demo"),
         latent: Annotated[int, typer.Option("--latent")] = DEMO_LATENT,
         vae_epochs: Annotated[int, typer.Option("--vae-epochs", help="0 skips the VAE.")] =
         DEMO_VAE["epochs"],
         k: Annotated[int, typer.Option("--k", help="Importance samples for the VAE's "
                                                   "log p(x).")] = 1000,
         report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
         overwrite: Annotated[bool, typer.Option(
             "--overwrite", help="Replace the runs a previous demo saved in --out.")] = False,
         threads: Threads = None):
    """Fit PCA, PPCA, FA, the linear autoencoder and a small VAE on digits; print
    held-out log-likelihoods; write an HTML report. Runs saved in --out before are
    replaced only with --overwrite (checked before anything is fitted)."""
    from .. import data as data_module
    from ..evaluate import check_importance, log_likelihood
    from ..persistence import METRICS_FILE, atomic_write_json
    from ..kinds import build_model
    from ..runs import fit_and_record, prepare_out_dir

    check_importance(k, "--k")  # before any model is fitted
    kinds = ("pca", "ppca", "fa", "linear-ae")
    for kind in kinds + (("vae",) if vae_epochs > 0 else ()):
        prepare_out_dir(out / kind, overwrite=overwrite)  # every run, before any fit
    dataset = data_module.load("digits")
    apply_threads(threads, dataset)
    rows, summary = [], {}
    for kind in kinds:
        model = build_model(kind, latent, seed=0)
        metrics = fit_and_record(model, dataset, out / kind, spec="digits",
                                 overwrite=overwrite)
        metrics["probe_accuracy"] = _probe(model, dataset)
        rows.append([kind, metrics["train_loglike"], metrics["test_loglike"], "exact",
                     metrics["test_loglike"], metrics["probe_accuracy"],
                     metrics["fit_seconds"], metrics["iterations"]])
        summary[kind] = metrics
    if vae_epochs > 0:
        from ..nn import VAE

        settings = dict(DEMO_VAE, epochs=vae_epochs)
        model = VAE(latent, seed=0, progress=True, **settings)
        metrics = fit_and_record(model, dataset, out / "vae", spec="digits",
                                 overwrite=overwrite)
        ll = log_likelihood(model, dataset.test, n_importance=k, progress=True)
        metrics.update(test_loglike_is=ll.mean, test_loglike_is_stderr=ll.stderr,
                       n_importance=k, probe_accuracy=_probe(model, dataset))
        atomic_write_json(out / "vae" / METRICS_FILE, metrics)
        rows.append(["vae", None, ll.mean, f"IS k={k}", metrics["test_elbo"],
                     metrics["probe_accuracy"], metrics["fit_seconds"], metrics["iterations"]])
        summary["vae"] = metrics
    atomic_write_json(out / "summary.json", summary)
    typer.echo(f"digits: {dataset.train.shape[0]} train / {dataset.test.shape[0]} test images, "
               f"8x8 in [0, 1], L = {latent}")
    typer.echo(format_table(["model", "train log p(x)", "test log p(x)", "method",
                             "test ELBO", "probe acc", "fit s", "iters/epochs"], rows))
    typer.echo("nats/sample of the continuous density of the pixels; the linear models are "
               "exact (ELBO = log p(x)), the VAE's log p(x) is importance-sampled. probe acc: "
               "test accuracy of a logistic regression on the codes (all training labels; "
               "chance 0.1).")
    if report:
        from ..report import write_report

        typer.echo(f"report: {write_report(out)}")
    typer.echo(f"runs saved under {out}/<model>/ (model, metrics.json, figures/)")


def _probe(model, dataset) -> float:
    """Linear-probe accuracy of the model's codes: logistic regression on all the
    training labels, scored on the test codes (:func:`elbokit.evaluate.linear_probe`)."""
    from ..evaluate import linear_probe

    return linear_probe(model, dataset.train, dataset.train_labels, dataset.test,
                        dataset.test_labels, n_labels=(None,),
                        classifiers=("logistic",))["logistic"]["all"]
