"""``elbokit fit vae``: train a VAE, checkpointing each epoch to the run directory.

A thin layer over :class:`elbokit.nn.VAE` and :func:`elbokit.runs.fit_and_record`;
torch is imported only when the command runs. The model's options are not written
here: each is a field of :class:`~elbokit.nn.config.ArchitectureConfig` or
:class:`~elbokit.nn.config.TrainingConfig`, and :func:`_model_options` turns the
fields (type, default, help) into Typer options. The run directory gets the saved
model (``model.json``, ``weights.safetensors``), ``metrics.json``, ``run.json`` and
``checkpoints/`` (``--resume`` continues from it).

Runs unchanged under ``torchrun --nproc_per_node=N`` (data-parallel, see
:mod:`elbokit.nn.distributed`): the processes share each minibatch of
``--batch-size`` rows, and rank 0 alone writes the run directory and prints.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..nn.config import cli_settings, estimator_default
from .common import (DEFAULT_TEST_FRACTION, Columns, Crop, DataDir, DataSpec, DropColumns,
                     Overwrite, Resize, Seed, TestFraction, image_size, print_metrics)

# Python types of the config annotations (strings under ``from __future__ import annotations``)
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple[int, ...]": str}


def _hidden(text: str, flag: str = "--hidden") -> tuple[int, ...]:
    from ..exceptions import ParameterError

    try:
        sizes = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ParameterError(f"{flag} must be comma-separated integers like 400 or "
                             f"512,256; got {text!r}") from None
    return sizes


def _option(f) -> inspect.Parameter:
    """The Typer option of one config field: its flag, help and default. A tuple of
    layer sizes is typed as "400" or "512,256"; a setting whose default is resolved
    at fit (None, "auto") is an optional option that defaults to None."""
    flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
    kind, default = _TYPES[f.type], estimator_default(f)
    if isinstance(default, tuple):
        default = ",".join(str(v) for v in default)
    if kind is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    if default is None or default == "auto":
        kind, default = Optional[kind], None
    option = typer.Option(flag, help=f.metadata["help"])
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])


def _model_settings(options: dict) -> dict:
    """The VAE's keyword arguments from the parsed model options."""
    settings = {}
    for f in cli_settings():
        value = options[f.name]
        if f.type == "tuple[int, ...]":
            value = _hidden(value, f.metadata["flag"] or "--" + f.name.replace("_", "-"))
        settings[f.name] = estimator_default(f) if value is None else value
    return settings


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
def _run_options(
    data: DataSpec = "digits",
    validation_fraction: Annotated[float, typer.Option(
        "--validation-fraction", help="Share of the training rows held out to record a "
                                      "validation ELBO each epoch (0: none).")] = 0.0,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint in --out.")]
    = False,
    on_nan: Annotated[str, typer.Option("--on-nan", help="stop (keep the last good "
                                        "checkpoint) or skip-batch (skip NaN/inf steps; "
                                        "counted in metrics.json).")] = "stop",
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")]
    = Path("runs/vae"),
    data_dir: DataDir = None, seed: Seed = 0, test_fraction: TestFraction = DEFAULT_TEST_FRACTION,
    overwrite: Overwrite = False, resize: Resize = None, crop: Crop = None,
    columns: Columns = None, drop_columns: DropColumns = None,
    tensorboard: Annotated[Optional[Path], typer.Option(
        "--tensorboard", help="Write TensorBoard event files (curves, image grids) to this "
                              "directory (pip install elbokit[tracking]).")] = None,
    mlflow: Annotated[Optional[str], _MLFLOW_OPTION] = None,
    condition_on: Annotated[str, typer.Option(
        "--condition-on", help="none, or labels: a conditional VAE, q(z|x, y) and p(x|z, y), "
                               "on the data set's class labels y.")] = "none",
):
    pass


def fit_vae(**options):
    """Variational autoencoder (Gaussian encoder; Bernoulli or Gaussian decoder)."""
    from .. import data as data_module
    from ..runs import check_resumable, fit_and_record, prepare_out_dir

    out, data, seed = options["out"], options["data"], options["seed"]
    if options["resume"]:
        check_resumable(out, "vae")
        check_resumed_settings(out, options)
    prepare_out_dir(out, overwrite=options["overwrite"] or options["resume"])
    dataset = data_module.load(data, data_dir=options["data_dir"], seed=seed,
                               test_fraction=options["test_fraction"],
                               resize=image_size(options["resize"]), crop=options["crop"],
                               columns=options["columns"], drop_columns=options["drop_columns"])
    if options["resume"]:
        check_resumed_columns(out, dataset.columns)
    from ..nn import VAE

    conditional = _condition_on(options["condition_on"], dataset)
    model = VAE(**_model_settings(options), image_shape=dataset.image_shape,
                channels=dataset.channels, seed=seed, conditional=conditional)
    callbacks = _callbacks(options, dataset.image_shape)
    metrics = fit_and_record(
        model, dataset, out, spec=data, seed=seed,
        overwrite=options["overwrite"] or options["resume"],
        test_fraction=options["test_fraction"], data_dir=options["data_dir"],
        validation_fraction=options["validation_fraction"], checkpoint=True,
        resume=options["resume"],
        on_nan=options["on_nan"], callbacks=callbacks)
    if metrics is None:  # under torchrun, rank 0 alone writes and prints
        return
    _log_artifacts(callbacks, out)
    print_metrics(f"vae (L={model.latent_dim}, {model.likelihood}) on {data}", metrics)
    typer.echo(f"saved to {out}")


def check_resumed_settings(out: Path, options: dict) -> None:
    """Refuse ``--resume`` with training settings the checkpoint in ``out`` does not
    allow to change: the library's rule (:func:`elbokit.nn.resume.check_resume`), run
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
    return callbacks


def _log_artifacts(callbacks: list, out: Path) -> None:
    """With --mlflow: write the run's report.html and log the run directory (model,
    metrics, report; not the checkpoints) as the MLflow run's artifacts."""
    from ..nn.callbacks import MLflowCallback

    for cb in callbacks:
        if isinstance(cb, MLflowCallback):
            from ..report import write_report

            write_report(out)
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


def _signature() -> inspect.Signature:
    run = list(inspect.signature(_run_options, eval_str=True).parameters.values())
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in run[:1]]
    params += [_option(f) for f in cli_settings()]
    params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in run[1:]]
    return inspect.Signature(params)


fit_vae.__signature__ = _signature()
fit_vae.__annotations__ = {p.name: p.annotation for p in fit_vae.__signature__.parameters.values()}


def register(fit_app: typer.Typer) -> None:
    """Add ``vae`` to the ``elbokit fit`` group (when torch is installed)."""
    if importlib.util.find_spec("torch") is not None:
        fit_app.command("vae")(fit_vae)
