"""``elbokit fit vae``: train a VAE, checkpointing each epoch to the run directory.

A thin layer over :class:`elbokit.nn.VAE`; torch is imported only when the command
runs. The run directory gets the saved model (``model.json``, ``weights.safetensors``),
``metrics.json``, ``run.json`` and ``checkpoints/`` (``--resume`` continues from it).

Runs unchanged under ``torchrun --nproc_per_node=N`` (data-parallel, see
:mod:`elbokit.nn.distributed`): the processes share each minibatch of
``--batch-size`` rows, and rank 0 alone writes the run directory and prints.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import DataDir, DataSpec, Latent, Overwrite, Seed, TestFraction, print_metrics

CHECKPOINTS = "checkpoints"


def _hidden(text: str) -> tuple[int, ...]:
    from ..exceptions import ParameterError

    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ParameterError(f"--hidden must be comma-separated integers like 400 or "
                             f"512,256; got {text!r}") from None
    return sizes


def fit_vae(
    data: DataSpec = "digits",
    latent: Latent = 10,
    likelihood: Annotated[str, typer.Option(help="bernoulli, gaussian or gaussian-fixed.")]
    = "bernoulli",
    decoder: Annotated[Optional[str], typer.Option(help="mlp, linear or conv (default: "
                                                        "conv for --arch conv, else mlp).")]
    = None,
    arch: Annotated[str, typer.Option(help="mlp or conv (images 8x8, 28x28, ...).")] = "mlp",
    hidden: Annotated[str, typer.Option(help="Hidden sizes of the MLP, e.g. 400 or "
                                             "512,256.")] = "400",
    objective: Annotated[str, typer.Option(help="a (L_A), b (L_B) or iwae.")] = "b",
    n_samples: Annotated[int, typer.Option("--n-samples", help="z samples per point (L).")]
    = 1,
    binarize: Annotated[str, typer.Option(help="none, dynamic or static (bernoulli only).")]
    = "none",
    sigma: Annotated[float, typer.Option(help="Std of likelihood gaussian-fixed.")] = 1.0,
    min_variance: Annotated[float, typer.Option("--min-variance",
                                                help="Variance floor of likelihood "
                                                     "gaussian (in units of each "
                                                     "feature's variance when "
                                                     "standardized).")] = 1e-3,
    standardize: Annotated[Optional[bool], typer.Option(
        "--standardize/--no-standardize",
        help="Fit on (x - mean) / std per feature, densities still of x as given (default: "
             "on for --likelihood gaussian, off otherwise; refused for bernoulli).")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs (in total, when resuming).")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    lr_schedule: Annotated[str, typer.Option("--lr-schedule", help="constant or cosine.")]
    = "constant",
    posterior: Annotated[str, typer.Option(help="gaussian, or iaf (inverse autoregressive "
                                                "flow on the Gaussian encoder).")] = "gaussian",
    flow_steps: Annotated[int, typer.Option("--flow-steps", help="IAF steps.")] = 2,
    kl_warmup: Annotated[int, typer.Option("--kl-warmup", help="Epochs over which the KL "
                                                               "weight rises from 0 (a, b).")] = 0,
    free_bits: Annotated[float, typer.Option("--free-bits", help="Free bits: nats per latent "
                                                                 "dimension (a, b).")] = 0.0,
    beta: Annotated[float, typer.Option(help="Weight of the KL in the loss (a, b); the "
                                             "reported ELBO is unweighted.")] = 1.0,
    validation_fraction: Annotated[float, typer.Option(
        "--validation-fraction", help="Share of the training rows held out to record a "
                                      "validation ELBO each epoch (0: none).")] = 0.0,
    patience: Annotated[int, typer.Option(help="Early stopping on the validation ELBO "
                                               "after this many epochs without gain "
                                               "(0: off; needs --validation-fraction).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")]
    = False,
    on_nan: Annotated[str, typer.Option("--on-nan", help="stop (keep the last good "
                                        "checkpoint) or skip-batch (skip NaN/inf steps; "
                                        "counted in metrics.json).")] = "stop",
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")]
    = Path("runs/vae"),
    data_dir: DataDir = None, seed: Seed = 0, test_fraction: TestFraction = 0.2,
    overwrite: Overwrite = False,
):
    """Variational autoencoder (Gaussian encoder; Bernoulli or Gaussian decoder)."""
    from .. import data as data_module
    from ..io import atomic_write_json
    from ..runs import (METRICS_FILE, RUN_FILE, metrics_for, names_of, prepare_out_dir,
                        record_fields, run_key)

    prepare_out_dir(out, overwrite=overwrite or resume)
    dataset = data_module.load(data, data_dir=data_dir, seed=seed, test_fraction=test_fraction)
    from ..nn import VAE

    model = VAE(latent, likelihood=likelihood, decoder=decoder, arch=arch,
                hidden=_hidden(hidden), image_shape=dataset.image_shape, min_variance=min_variance,
                sigma=sigma, standardize="auto" if standardize is None else standardize,
                epochs=epochs, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule,
                objective=objective, n_samples=n_samples, binarize=binarize, patience=patience,
                seed=seed, device=device, progress=progress, posterior=posterior,
                flow_steps=flow_steps, kl_warmup=kl_warmup, free_bits=free_bits, beta=beta)
    fit_rows, validation = split_validation(dataset.train, validation_fraction, seed)
    names = getattr(dataset, "feature_names", None)
    start = time.perf_counter()
    model.fit(with_names(fit_rows, names), validation=validation,
              checkpoint_dir=out / CHECKPOINTS, resume=resume, on_nan=on_nan)
    seconds = time.perf_counter() - start
    if _leave_process_group():  # under torchrun, rank 0 alone writes and prints
        return
    # a diverged fit is an error, not a result: nothing below is written
    model.check_fit(dataset.test, "test", reference=dataset.train)
    model.save(out, extra=names_of(dataset))
    metrics = metrics_for(model, dataset)  # binarised once for a binary-pixel model
    metrics.update(fit_seconds=seconds, epochs=len(model.history_),
                   images_per_second=_throughput(model, dataset.train.shape[0]),
                   n_train=int(dataset.train.shape[0]), n_test=int(dataset.test.shape[0]),
                   n_features=int(dataset.n_features))
    skipped = [h["skipped_batches"] for h in model.history_ if "skipped_batches" in h]
    if skipped:
        metrics["skipped_batches"] = int(sum(skipped))
    run = {"kind": "vae", "data": data, "validation_fraction": validation_fraction,
           "seed": seed, "latent": latent,
           "image_shape": list(dataset.image_shape) if dataset.image_shape else None,
           "params": {k: (list(v) if isinstance(v, tuple) else v)
                      for k, v in model.get_params().items()},
           "resumed": resume}
    run.update(record_fields(dataset, run_key("vae", run["params"], spec=data, seed=seed,
                                              test_fraction=test_fraction, data_dir=data_dir,
                                              validation_fraction=validation_fraction)))
    atomic_write_json(out / RUN_FILE, run)
    atomic_write_json(out / METRICS_FILE, metrics)
    print_metrics(f"vae (L={latent}, {likelihood}) on {data}", metrics)
    typer.echo(f"saved to {out}")


def _leave_process_group() -> bool:
    """After training under torchrun: leave the process group; True on the ranks other
    than 0, which write nothing. False (nothing to do) in a single process."""
    from ..nn import distributed

    other = not distributed.is_main()
    distributed.shutdown()
    return other


def with_names(X, names):
    """X as a DataFrame with the data set's column names (so the model records them
    as ``feature_names_in_``), when there are names and pandas is installed; else X."""
    if not names:
        return X
    try:
        import pandas
    except ImportError:
        return X
    return pandas.DataFrame(X, columns=[str(n) for n in names], copy=False)


def split_validation(X, fraction: float, seed: int):
    """(fit rows, validation rows or None): a seeded share of the training rows."""
    import numpy as np

    from ..exceptions import ParameterError

    if not 0.0 <= fraction < 1.0:
        raise ParameterError(f"--validation-fraction must lie in [0, 1); got {fraction}")
    if fraction == 0.0:
        return X, None
    n_val = max(1, int(round(fraction * X.shape[0])))
    order = np.random.default_rng(seed + 7).permutation(X.shape[0])
    return X[order[n_val:]], X[order[:n_val]]


def _throughput(model, n_train: int) -> float | None:
    seconds = sum(h["seconds"] for h in model.history_)
    return n_train * len(model.history_) / seconds if seconds > 0 else None


def register(fit_app: typer.Typer) -> None:
    """Add ``vae`` to the ``elbokit fit`` group."""
    from ..runs import locked_run

    fit_app.command("vae")(locked_run(fit_vae))  # the run directory is locked while it runs
