"""``elbokit fit ae``: the deterministic autoencoder (:class:`elbokit.Autoencoder`), with
``fit vae``'s main network and training options. Torch is imported when it runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from .common import (DEFAULT_TEST_FRACTION, Columns, DataDir, DataSpec, DropColumns, Latent,
                     Overwrite, Seed, TestFraction, print_metrics)


def fit_ae(data: DataSpec = "digits", latent: Latent = 10,
           likelihood: Annotated[str, typer.Option(
               help="bernoulli (data in [0, 1]: cross-entropy) or gaussian (squared "
                    "error).")] = "bernoulli",
           arch: Annotated[str, typer.Option(help="mlp or conv (images).")] = "mlp",
           decoder: Annotated[str, typer.Option(help="mlp, linear or conv (default: "
                                                     "--arch).")] = None,
           hidden: Annotated[str, typer.Option(help="Hidden sizes of the MLP encoder (the "
                                                    "decoder mirrors them).")] = "400",
           epochs: Annotated[int, typer.Option(help="Epochs.")] = 10,
           batch_size: Annotated[int, typer.Option("--batch-size")] = 128,
           lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
           lr_schedule: Annotated[str, typer.Option("--lr-schedule",
                                                    help="constant or cosine.")] = "constant",
           device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
           out: Annotated[Path, typer.Option("--out", help="Run directory to write.")]
           = Path("runs/ae"),
           data_dir: DataDir = None, seed: Seed = 0,
           test_fraction: TestFraction = DEFAULT_TEST_FRACTION, overwrite: Overwrite = False,
           columns: Columns = None, drop_columns: DropColumns = None):
    """Deterministic autoencoder: the VAE's networks trained on reconstruction error
    (no prior, no density)."""
    from .. import data as data_module
    from ..runs import fit_and_record, prepare_out_dir
    from .fit_vae import _hidden

    prepare_out_dir(out, overwrite=overwrite)
    sizes = _hidden(hidden)
    dataset = data_module.load(data, data_dir=data_dir, seed=seed, test_fraction=test_fraction,
                               columns=columns, drop_columns=drop_columns)
    from ..nn import Autoencoder

    model = Autoencoder(latent, likelihood=likelihood, arch=arch, decoder=decoder,
                        hidden=sizes, image_shape=dataset.image_shape, epochs=epochs,
                        batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, seed=seed,
                        device=device)
    metrics = fit_and_record(model, dataset, out, spec=data, seed=seed, overwrite=overwrite,
                             test_fraction=test_fraction, data_dir=data_dir)
    print_metrics(f"ae (L={latent}, {likelihood}) on {data}", metrics)
    typer.echo(f"saved to {out}")


def register(fit_app: typer.Typer) -> None:
    """Add ``ae`` to the ``elbokit fit`` group (when torch is installed)."""
    if importlib.util.find_spec("torch") is not None:
        fit_app.command("ae")(fit_ae)
