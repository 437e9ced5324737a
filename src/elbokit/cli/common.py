"""What the commands share: the options of the data and the run directory (declared
once here), the options built from config fields (:func:`config_option`), command
signatures assembled from option groups (:func:`with_options`), the data loading and
recording of a fit, and table printing."""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..data import DEFAULT_TEST_FRACTION
from ..nn.config import LATENT_DIM, ArchitectureConfig, estimator_default  # noqa: F401

DATA_HELP = ("digits, breast-cancer, wine, diabetes, iris, mnist, fashion-mnist (IDX files in "
             "--data-dir), or a path: .npy; .npz (arrays, or a sparse matrix from "
             "scipy.sparse.save_npz); .csv/.tsv/.txt tables, also gzipped (.csv.gz, "
             ".tsv.gz); .h5ad (AnnData: --layer, --labels); .mtx/.mtx.gz (Matrix Market, "
             "with genes/barcodes files beside it); a 10x folder (matrix.mtx, features.tsv "
             "or genes.tsv, barcodes.tsv, each may be .gz); or a folder of PNG/JPEG images.")
DataSpec = Annotated[str, typer.Option("--data", help=DATA_HELP)]
Layer = Annotated[Optional[str], typer.Option(
    "--layer", help=".h5ad data: the AnnData layer to read instead of X (e.g. counts).")]
Labels = Annotated[Optional[str], typer.Option(
    "--labels", metavar="COLUMN",
    help=".h5ad data: the obs column of the cells' labels (default: the first of "
         "cell_type, celltype, labels, louvain, leiden, clusters... present).")]
Resize = Annotated[Optional[str], typer.Option(
    "--resize", help="Image folders: resize every image to H,W (e.g. 32,32).")]
Crop = Annotated[Optional[str], typer.Option(
    "--crop", help="Image folders: 'center' crops each image about its centre (to the "
                   "smallest size, or to --resize's aspect ratio).")]
DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Directory of IDX files "
                                                                    "(else $ELBOKIT_DATA).")]
_LATENT = {f.name: f for f in dataclasses.fields(ArchitectureConfig)}["latent_dim"]
Latent = Annotated[int, typer.Option(_LATENT.metadata["flag"], help=_LATENT.metadata["help"])]
Out = Annotated[Path, typer.Option("--out", help="Run directory to write.")]
Standardize = Annotated[bool, typer.Option(
    "--standardize/--no-standardize",
    help="Fit to the standardized features (each divided by its standard deviation); "
         "log-likelihoods are still reported for the data in its own units.")]
Normalize = Annotated[bool, typer.Option(
    "--normalize/--no-normalize", help="Kaiser normalization of the rotation (rows divided "
                                       "by sqrt(h2)).")]
TestFraction = Annotated[float, typer.Option(
    "--test-fraction", help="Held-out share for digits, tables and user files, in [0, 1); "
                            "0 fits on every row (no held-out metrics).")]
Columns = Annotated[Optional[str], typer.Option(
    "--columns", help="Tables (a CSV file with a header, a built-in table): the columns to "
                      "use, by name, comma-separated (e.g. A1,A2,A3); the others are not "
                      "read.")]
DropColumns = Annotated[Optional[str], typer.Option(
    "--drop-columns", help="Tables: the columns to leave out, by name, comma-separated "
                           "(e.g. id,gender).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a saved model in --out.")]
Networks = Annotated[Optional[str], typer.Option(
    "--networks", metavar="SOURCE",
    help="Where the classes of a run's own encoder/decoder are defined: FILE.py, "
         "FILE.py:ATTR, MODULE or MODULE:ATTR. Exactly that is imported (never a name read "
         "from the run directory); the classes model.json names are built from it.")]


def import_networks(source: str | None) -> dict | None:
    """The network classes of ``--networks SOURCE`` (None when it is not given), by
    :func:`elbokit.nn.protocols.import_networks`."""
    if source is None:
        return None
    from ..nn.protocols import import_networks as import_source

    return import_source(source)


def load_run_model(run_dir, networks: str | None = None):
    """The model saved in ``run_dir``, its custom networks built from ``--networks``'
    classes (:func:`elbokit.models.load_model`)."""
    from ..models import load_model

    return load_model(run_dir, networks=import_networks(networks))


def _check_seed(value: int) -> int:
    from ..exceptions import ParameterError
    from ..runs import MAX_SEED

    if not 0 <= value <= MAX_SEED:
        raise ParameterError(f"--seed must be an integer in [0, {MAX_SEED}]; got {value}")
    return value


Seed = Annotated[int, typer.Option("--seed", help="Seed of the split and the fit.",
                                   callback=_check_seed)]


def _check_threads(value: int | None) -> int | None:
    from ..exceptions import ParameterError

    if value is not None and value < 1:
        raise ParameterError(f"--threads must be an integer >= 1; got {value}")
    return value


Threads = Annotated[Optional[int], typer.Option(
    "--threads", callback=_check_threads,
    help="CPU threads of torch and of the linear algebra (default: the cores the machine's "
         "1-minute load average leaves idle, at least 1).")]


def auto_threads() -> int:
    """The threads of ``--threads`` left out: the cores the 1-minute load average leaves
    idle, at least one (benchmarks/threads.py, on 2 cores: idle, two threads took
    0.61-0.95 of one thread's time on every table, small ones included; under a load
    of 8-10, two threads ran 7-13x slower than one)."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, min(cores, cores - int(load)))


def apply_threads(threads: int | None, dataset) -> int:
    """Set torch's and BLAS's threads for the command's work on ``dataset`` (None: a
    command of small work, a sample or a report's figures) (``threads``: the option's
    value; None: :func:`auto_threads`); returns the count."""
    import sys

    from threadpoolctl import threadpool_limits

    count = threads or (1 if dataset is None else auto_threads())
    threadpool_limits(limits=count)  # BLAS and OpenMP, for the rest of the process
    if "torch" in sys.modules:  # else the environment tells torch when it is imported
        sys.modules["torch"].set_num_threads(count)
    os.environ["OMP_NUM_THREADS"] = str(count)
    return count


def shared_fit_options(data_dir: DataDir = None, seed: Seed = 0,
                       test_fraction: TestFraction = DEFAULT_TEST_FRACTION,
                       overwrite: Overwrite = False, columns: Columns = None,
                       drop_columns: DropColumns = None, threads: Threads = None,
                       layer: Layer = None, labels: Labels = None):
    """The options every ``elbokit fit`` command takes after its model's (a group for
    :func:`with_options`)."""


# --------------------------------------------------------------------------- signatures

def with_options(*groups, **defaults):
    """Give a command ``def command(**options)`` the keyword options of ``groups`` (in
    order): functions whose parameters are Typer options, or lists of
    :class:`inspect.Parameter`; ``defaults`` replaces the default of the option named."""
    def decorate(command):
        params = []
        for group in groups:
            if callable(group):
                group = inspect.signature(group, eval_str=True).parameters.values()
            params += [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in group]
        params = [p.replace(default=defaults[p.name]) if p.name in defaults else p
                  for p in params]
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


# Python types of the config annotations (strings under ``from __future__ import annotations``)
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple[int, ...]": str}


def flag_of(f: dataclasses.Field) -> str:
    """The CLI option of config field ``f``: its declared flag, else --name-with-dashes."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def config_option(f: dataclasses.Field, default=dataclasses.MISSING,
                  help: str | None = None) -> inspect.Parameter:
    """The Typer option of one config field: its flag, help and default (the
    estimator's, unless ``default`` is given). A tuple of layer sizes is typed as "400"
    or "512,256"; a setting whose default is resolved at fit (None, "auto") is an
    optional option that defaults to None."""
    flag = flag_of(f)
    kind = _TYPES[f.type]
    default = estimator_default(f) if default is dataclasses.MISSING else default
    if isinstance(default, tuple):
        default = ",".join(str(v) for v in default)
    if kind is bool:
        flag = f"{flag}/--no-{flag[2:]}"
    if default is None or default == "auto":
        kind, default = Optional[kind], None
    option = typer.Option(flag, help=help or f.metadata["help"])
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])


def config_field_option(name: str):
    """The ``Annotated`` type of config field ``name``'s option (as ``elbokit fit vae``
    declares it, :func:`config_option`), for a command that takes that one setting."""
    from ..nn.config import TrainingConfig

    field = {f.name: f for f in (*dataclasses.fields(ArchitectureConfig),
                                 *dataclasses.fields(TrainingConfig))}[name]
    return config_option(field).annotation


def layer_sizes(text: str, flag: str = "--hidden") -> tuple[int, ...]:
    """--hidden 512,256 as (512, 256)."""
    from ..exceptions import ParameterError

    try:
        return tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ParameterError(f"{flag} must be comma-separated integers like 400 or "
                             f"512,256; got {text!r}") from None


def model_settings(fields, options: dict, defaults=None) -> dict:
    """The estimator's keyword arguments from the parsed options of config ``fields``
    (an option left unset takes the estimator's default, or ``defaults``')."""
    defaults = defaults or {}
    settings = {}
    for f in fields:
        value = options[f.name]
        if f.type == "tuple[int, ...]":
            value = layer_sizes(value, flag_of(f))
        default = defaults.get(f.name, estimator_default(f))
        settings[f.name] = default if value is None else value
    return settings


def image_size(text: str | None) -> tuple[int, int] | None:
    """--resize H,W as (H, W)."""
    from ..exceptions import ParameterError

    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ParameterError(f"--resize must be two positive integers H,W like 32,32; got "
                             f"{text!r}")
    return size


# --------------------------------------------------------------------------- a fit

def load_dataset(options: dict, **load_options):
    """The data set of a command's --data, --data-dir, --seed, --test-fraction,
    --columns, --drop-columns, --layer and --labels (``load_options``: the rest of
    :func:`elbokit.data.load`'s keywords)."""
    from .. import data as data_module

    dataset = data_module.load(options["data"], data_dir=options["data_dir"],
                               seed=options["seed"], test_fraction=options["test_fraction"],
                               columns=options["columns"],
                               drop_columns=options["drop_columns"],
                               layer=options.get("layer"), labels=options.get("labels"),
                               **load_options)
    apply_threads(options.get("threads"), dataset)
    return dataset


def record_fit(model, dataset, options: dict, **fit_keywords) -> dict | None:
    """Fit ``model`` and record the run in --out (:func:`elbokit.runs.fit_and_record`)."""
    from ..runs import fit_and_record

    fit_keywords.setdefault("overwrite", options["overwrite"])
    return fit_and_record(model, dataset, options["out"], spec=options["data"],
                          seed=options["seed"], test_fraction=options["test_fraction"],
                          data_dir=options["data_dir"], **fit_keywords)


def print_saved(title: str, metrics: dict, out: Path) -> None:
    """The metrics of a finished fit, and where it was saved."""
    print_metrics(title, metrics)
    typer.echo(f"saved to {out}")


def format_table(header: list[str], rows: list[list]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in
                       enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def print_metrics(title: str, metrics: dict) -> None:
    """Print the metrics of one run as a two-column table."""
    rows = [[k, v] for k, v in metrics.items() if not k.endswith("note") and k != "quantity"]
    typer.echo(title)
    typer.echo(format_table(["metric", "value"], rows))
    if "quantity" in metrics:
        typer.echo(f"(values: {metrics['quantity']})")
    if "test_note" in metrics:
        typer.echo(metrics["test_note"])
