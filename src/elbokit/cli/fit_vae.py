"""``elbokit fit vae``: train a VAE, checkpointing each epoch to the run directory.

A thin layer over :class:`elbokit.nn.VAE` and :func:`elbokit.runs.fit_and_record`;
torch is imported only when the command runs. The model's options are not written
here: each is a field of :class:`~elbokit.nn.config.ArchitectureConfig` or
:class:`~elbokit.nn.config.TrainingConfig`, and ``config_option`` of
``elbokit.cli.common`` turns the fields (type, default, help) into Typer options.
The run directory gets the saved model (``model.json``, ``weights.safetensors``),
``metrics.json``, ``run.json`` and ``checkpoints/`` (``--resume`` continues from it).

Runs unchanged under ``torchrun --nproc_per_node=N`` (data-parallel, see
:mod:`elbokit.nn.distributed`): the processes share each minibatch of
``--batch-size`` rows, and rank 0 alone writes the run directory and prints.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..nn.config import cli_settings
from .common import (Crop, DataSpec, Networks, Out, Resize, config_option, image_size,
                     import_networks, load_dataset, model_settings, print_saved, record_fit, shared_fit_options,
                     with_options)


_MLFLOW_OPTION = typer.Option(
    "--mlflow", metavar="[URI]",
    help="Log the run to MLflow: params, metrics per epoch, the run directory and its report "
         "as artifacts; URI: the tracking store (alone: MLflow's default, "
         "MLFLOW_TRACKING_URI).")
OPTIONAL_VALUES = ("--mlflow",)  # options whose value may be left out


def bare_options(argv: list[str]) -> list[str]:
    """``--mlflow`` given without a value (last, or before another option) as
    ``--mlflow=`` (the empty value: MLflow's default store); Typer has no options
    with an optional value."""
    out = []
    for i, arg in enumerate(argv):
        bare = arg in OPTIONAL_VALUES and (i + 1 == len(argv) or argv[i + 1].startswith("-"))
        out.append(arg + "=" if bare else arg)
    return out


# the run's options, beside the model's (the fit's data, its output, its protocol)
def _data(data: DataSpec = "digits"):
    """The data set, first."""


def _run_options(
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")]
    = False,
    networks: Networks = None,
    on_nan: Annotated[str, typer.Option("--on-nan", help="stop (keep the last good "
                                        "checkpoint) or skip-batch (skip NaN/inf steps; "
                                        "counted in metrics.json).")] = "stop",
    out: Out = Path("runs/vae"), resize: Resize = None, crop: Crop = None,
    tensorboard: Annotated[Optional[Path], typer.Option(
        "--tensorboard", help="Write TensorBoard event files (curves, image grids) to this "
                              "directory (pip install elbokit[tracking]).")] = None,
    mlflow: Annotated[Optional[str], _MLFLOW_OPTION] = None,
    condition_on: Annotated[str, typer.Option(
        "--condition-on", help="none, or labels: a conditional VAE, q(z|x, y) and p(x|z, y), "
                               "on the data set's class labels y.")] = "none",
):
    """The run's options beside the model's."""


def fit_vae(**options):
    """Variational autoencoder (Gaussian encoder; Bernoulli, Gaussian or discretized
    logistic decoder: by default logistic for 8-bit images, else Bernoulli)."""
    from ..exceptions import ParameterError
    from .._provenance import check_resumable
    from ..runs import prepare_out_dir

    out, resume = options["out"], options["resume"]
    modules = {}
    if resume:
        check_resumable(out, "vae")
        check_resumed_settings(out, options)
        modules = resumed_networks(out, options["networks"])
    elif options["networks"] is not None:
        raise ParameterError("--networks is for --resume of a run with custom networks (a "
                             "new fit builds the preset networks of --arch)")
    prepare_out_dir(out, overwrite=options["overwrite"] or resume)
    dataset = load_dataset(options, resize=image_size(options["resize"]), crop=options["crop"],
                           allow_nan=True)  # NaN: missing values (elbokit impute fills them)
    if resume:
        check_resumed_columns(out, dataset.columns)
        if _checkpoint_architecture(out).get("feature_names", True) is None:
            # a run started on an array without names (from Python) goes on without them
            dataset = dataclasses.replace(dataset, feature_names=None)
    from ..nn import VAE

    conditional = _condition_on(options["condition_on"], dataset)
    settings = {**model_settings(cli_settings(), options), **modules}  # modules: --networks'
    model = VAE(**settings, image_shape=dataset.image_shape, channels=dataset.channels,
                seed=options["seed"], conditional=conditional)
    callbacks = _callbacks(options, dataset.image_shape)
    metrics = record_fit(model, dataset, options, overwrite=options["overwrite"] or resume,
                         checkpoint=True, resume=resume, on_nan=options["on_nan"],
                         callbacks=callbacks)
    if metrics is None:  # under torchrun, rank 0 alone writes and prints
        return
    _log_artifacts(callbacks, out, options["networks"], options["data"])
    print_saved(f"vae (L={model.latent_dim}, {model.architecture_.likelihood}) on "
                f"{options['data']}", metrics, out)


def check_resumed_settings(out: Path, options: dict) -> None:
    """Refuse ``--resume`` with training settings the checkpoint in ``out`` does not
    allow to change: the library's rule (:func:`elbokit.nn.train.resume.check_resume`), run
    before any data is loaded; its warnings come from the fit."""
    from ..exceptions import ModelFileError
    from ..nn.train.resume import check_resume
    from ..persistence import CHECKPOINT_FILE, read_json
    from ..runs import VAE_CHECKPOINTS

    record = Path(out) / VAE_CHECKPOINTS / CHECKPOINT_FILE
    if not record.is_file():
        return
    try:
        training = read_json(record, "checkpoint file").get("training")
    except ModelFileError:
        return  # the loader names what is wrong with it
    if isinstance(training, dict):
        check_resume(training, options, record, warn=False)


def resumed_networks(out: Path, source: str | None) -> dict:
    """``{"encoder": module, ...}``: the custom networks of the checkpoint in ``out``,
    built from the classes of ``--networks SOURCE`` (the checkpoint's weights are loaded
    into them when the fit resumes); {} for a run of preset networks. Without
    --networks a custom run is one line naming the class and the flag."""
    from types import SimpleNamespace

    from ..exceptions import ModelFileError, ParameterError
    from ..persistence import CHECKPOINT_FILE
    from ..runs import VAE_CHECKPOINTS

    record = Path(out) / VAE_CHECKPOINTS / CHECKPOINT_FILE
    architecture = _checkpoint_architecture(out)
    custom = [part for part in ("encoder", "decoder") if architecture.get(part) == "custom"]
    if not custom:
        if source is not None:
            raise ParameterError(f"--networks: the checkpoint in {out} holds the preset "
                                 "networks, none of your own; leave out --networks")
        return {}
    from ..nn.protocols import network_builder

    build = network_builder(record, networks=import_networks(source) if source else None)
    try:
        return build(SimpleNamespace(**architecture))
    except (KeyError, TypeError):  # a record without its fields: the loader names it
        raise ModelFileError(f"{record}: the custom networks' records are incomplete") from None


def _checkpoint_architecture(out: Path) -> dict:
    """The architecture the checkpoint in ``out`` records, as JSON; {} without a
    checkpoint (the fit warns) or with one the loader refuses (it names the problem)."""
    from ..exceptions import ModelFileError
    from ..persistence import CHECKPOINT_FILE, read_json
    from ..runs import VAE_CHECKPOINTS

    record = Path(out) / VAE_CHECKPOINTS / CHECKPOINT_FILE
    try:
        architecture = read_json(record, "checkpoint file").get("architecture") \
            if record.is_file() else None
    except ModelFileError:
        architecture = None
    return architecture if isinstance(architecture, dict) else {}


def check_resumed_columns(out: Path, columns: list[str] | None) -> None:
    """Refuse ``--resume`` with other columns than the run in ``out`` recorded (its
    run.json, when a fit has completed there): the model continues on the same ones."""
    from ..exceptions import ModelFileError, ParameterError
    from ..runs import RUN_FILE, read_run, recorded_columns

    if not (Path(out) / RUN_FILE).is_file():
        return
    try:
        recorded = recorded_columns(read_run(out), out)
    except ModelFileError:
        return  # the loader names what is wrong with it
    if recorded != columns:
        raise ParameterError(f"--resume needs the columns the run in {out} was fitted on "
                             f"({', '.join(recorded) if recorded else 'every column'}); got "
                             f"{', '.join(columns) if columns else 'every column'}")


def _callbacks(options: dict, image_shape) -> list:
    """The tracking callbacks of --tensorboard and --mlflow (their packages imported
    only when asked for)."""
    callbacks = []
    if options["tensorboard"] is not None:
        from ..nn.callbacks import TensorBoardCallback

        callbacks.append(TensorBoardCallback(options["tensorboard"], image_shape=image_shape))
    if options["mlflow"] is not None:
        from ..nn.callbacks import MLflowCallback

        callbacks.append(MLflowCallback(options["mlflow"] or None))
        callbacks[-1].connect()  # a store that cannot be opened fails before --out is touched
    return callbacks


def _log_artifacts(callbacks: list, out: Path, networks: str | None = None,
                   data: str | None = None) -> None:
    """With --mlflow: write the run's report.html (on ``data``, the fit's --data; its
    custom networks from ``--networks``) and log the run directory (model, metrics,
    report; not the checkpoints) as the MLflow run's artifacts."""
    from ..nn.callbacks import MLflowCallback

    for cb in callbacks:
        if isinstance(cb, MLflowCallback):
            from ..report import write_report

            write_report(out, data=data, networks=import_networks(networks))
            for path in sorted(out.iterdir()):
                if path.is_file() and not path.name.startswith("."):
                    cb.log_artifacts(path)
            typer.echo(f"logged to MLflow run {cb.run_id}")


def _condition_on(value: str, dataset) -> bool:
    """Whether ``--condition-on`` asks for a conditional VAE (checked against the data)."""
    from ..exceptions import ParameterError
    from ..runs import check_labels_for_condition

    if value not in ("none", "labels"):
        raise ParameterError(f"--condition-on must be none or labels; got {value!r}")
    if value == "labels":
        check_labels_for_condition(dataset)
    return value == "labels"


with_options(_data, [config_option(f) for f in cli_settings()], _run_options,
             shared_fit_options)(fit_vae)


def register(fit_app: typer.Typer) -> None:
    """Add ``vae`` to the ``elbokit fit`` group (when torch is installed)."""
    if importlib.util.find_spec("torch") is not None:
        fit_app.command("vae")(fit_vae)
