"""``elbokit report RUN_DIR``: one self-contained HTML page per run directory.

The page embeds every figure as a base64 PNG (no network, no external files), with
the run's resolved settings, its metrics and, for a directory of runs (such as
``runs/demo``), a comparison table across the models.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import numpy as np

from .exceptions import ModelFileError
from .persistence import (METRICS_FILE, MODEL_FILE, RUN_FILE, atomic_write_bytes, read_json,
                          read_metrics, read_run)
from ._factor_report import DEFAULT_CUT, REPORT_ROTATIONS
from ._report_data import (check_one_data, dataset_of, given_data_note, no_figure, own_data,
                           scores)
from .runs import NO_TEST_SET
from ._text import plain_text

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 520px; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
figure.wide img, figure.wide figcaption { max-width: 1000px; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _run_dirs(path: Path) -> list[Path]:
    if (path / MODEL_FILE).is_file():
        return [path]
    runs = sorted(p for p in path.iterdir() if (p / MODEL_FILE).is_file()) \
        if path.is_dir() else []
    if not runs:
        raise ModelFileError(f"{path} holds no saved model (no {MODEL_FILE} in it or in its "
                             "subdirectories); pass a directory written by `elbokit fit`")
    return runs


def _table(rows: list[dict], columns: list[str], digits: int | None = None) -> str:
    """An HTML table; floats with 3 decimals, or ``digits`` significant digits."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = ""
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            if isinstance(value, float):
                text = f"{value:.3f}" if digits is None else f"{value:.{digits}g}"
            else:
                text = "-" if value is None else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body += "<tr>" + "".join(cells) + "</tr>"
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(path: str, caption: str, name: str | None = None, alt: str | None = None) -> str:
    """A figure with its PNG inline; ``name`` gives it an id (and the wide layout of the
    table figures), ``alt`` a text alternative longer than the caption."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    figure_id = f' id="figure-{html.escape(name)}" class="wide"' if name else ""
    return (f'<figure{figure_id}><img alt="{html.escape(alt or caption)}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_CAPTIONS = {
    "samples": "samples from the model (decoder means of prior draws for a VAE)",
    "samples_by_class": "a conditional VAE's samples, one row per class (same z per column)",
    "reconstructions": "test images and their reconstructions E[x | E[z|x]]",
    "uncertainty": "per-pixel std of decoder means over posterior samples of z",
    "completions": "completing test images with the bottom half hidden: the truth, what the "
                   "model sees (hidden in red), and answers drawn from p(x_mis | x_obs); "
                   "each titled with its log p(x) in nats (the truth also with log p(x_mis "
                   "| x_obs), 'seen' with log p(x_obs)), by importance sampling",
    "traversals": "latent traversals along the most active dimensions",
    "manifold": "the 2-D latent manifold (Kingma & Welling, fig. 4)",
    "latent": "posterior means of test points, coloured by label",
    "kl_per_dim": "KL per latent dimension (nats)",
    "curves": "training curve",
    "latent_arithmetic": "latent arithmetic: test codes of one class plus the difference "
                         "of two class means of the codes, decoded",
}


def _names(run: dict, dataset, key: str) -> list[str] | None:
    """Feature or target names: run.json's, else the loaded data set's (else None)."""
    names = run.get(key) or {"feature_names": dataset.feature_names,
                             "target_names": dataset.target_names}[key]
    return None if names is None else [str(name) for name in names]


def _is_image_run(run: dict, dataset) -> bool:
    """Whether the rows are images: run.json's record, else the data's (a run saved from
    Python without an image shape, reported on --data images)."""
    return (run.get("image_shape") or dataset.image_shape) is not None


def _feature_table(model, dataset, names: list[str]) -> str:
    """Per feature: noise variance (squared units), communality h2 and uniqueness u2 on
    the 0-1 scale (shares of the model variance), relative test error."""
    from .evaluate import per_feature_errors
    from .linear._interpret import communalities

    X = dataset.test[:2000]
    if model.conditional and (model.classes_ is None or dataset.test_labels is None):
        return ""  # conditioned on covariates: no labels to reconstruct the rows with
    y = dataset.test_labels[:2000] if model.conditional else None
    mse, variance = per_feature_errors(model, X, y)
    relative = [float(m / v) if v > 0 else None for m, v in zip(mse, variance)]
    rows = [{"feature": name, "test RMSE": float(np.sqrt(m)), "MSE / variance": r}
            for name, m, r in zip(names, mse, relative)]
    columns = ["feature"]
    if model.linear_gaussian:  # the model protocol: x = W z + mu + noise
        psi = model.noise_variances()
        _, share = communalities(model.loading_matrix(), psi)
        for row, p, c in zip(rows, psi, share):
            row.update({"noise variance (squared units)": float(p),
                        "h2 (communality share)": float(c), "u2": float(1.0 - c)})
        columns += ["noise variance (squared units)", "h2 (communality share)", "u2"]
    return ("<details><summary>per-feature table</summary>"
            + _table(rows, columns + ["test RMSE", "MSE / variance"], digits=4)
            + "</details>")


def _figures(run: dict, run_dir: Path, model, dataset, options: dict) -> str:
    """The figures of a run (and, for a linear-Gaussian model on a table, its factor
    solution, correlations and fit statistics); ``options``: rotation, normalize, cut."""
    from ._factor_report import factor_section
    from .plots import all_figures, curves_figure, feature_labels, table_figures

    history = model.training_curve()
    out_dir = run_dir / "figures"
    if _is_image_run(run, dataset):
        figures = all_figures(model, dataset, out_dir, history=history)
        if history and "curves" not in figures:  # a VAE conditioned on covariates
            curves_figure(history, out_dir / "curves.png")
            figures["curves"] = str(out_dir / "curves.png")
        return "".join(_image(p, _CAPTIONS.get(name, name)) for name, p in figures.items())
    names = feature_labels(_names(run, dataset, "feature_names"), dataset.n_features)
    figures = table_figures(model, dataset, out_dir, feature_names=names,
                            label_names=_names(run, dataset, "target_names"),
                            rotation=options["rotation"], normalize=options["normalize"],
                            history=history)
    factors = factor_section(model, dataset.train, names, **options) \
        if model.linear_gaussian else ""
    return (factors
            + "".join(_image(f.path, f.caption, name, f.alt) for name, f in figures.items())
            + _scree_note(model, dataset, figures) + _feature_table(model, dataset, names))


def _scree_note(model, dataset, figures) -> str:
    """The sentence saying why a linear model's page has no parallel-analysis scree."""
    from .linear._interpret import complete_rows
    from .plots.tables import parallel_scree_omitted

    if not model.linear_gaussian or "scree" in figures:
        return ""
    why = parallel_scree_omitted(*complete_rows(dataset.train).shape)
    return "" if why is None else f'<p class="note">{html.escape(why)}</p>'


def _section(run_dir: Path, with_figures: bool, datasets: dict,
             options: dict | None = None, classes: dict | None = None,
             loaded: dict | None = None, data: str | None = None,
             networks: dict | None = None,
             load_options: dict | None = None) -> tuple[str, dict]:
    """The HTML of one run and its summary row; ``loaded`` collects (data key, model) of
    the runs whose figures were drawn, by run directory (for :func:`_ae_vae_section`).
    ``data``, ``load_options``: the data of a run that names none (see
    :func:`write_report`)."""
    from .models import load_model

    # run.json and metrics.json through their schema checks (a tampered field is a
    # one-line ModelFileError, never a traceback or a silently odd figure)
    run = read_run(run_dir) if (run_dir / RUN_FILE).is_file() else {}
    metrics = read_metrics(run_dir) if (run_dir / METRICS_FILE).is_file() else {}
    # run.json names the kind; model.json is read for it only for runs without one
    kind = run.get("kind") or read_json(run_dir / MODEL_FILE, "model file").get("kind")
    parts = []
    if with_figures:
        model = load_model(run_dir, networks=networks,
                           **_custom_classes(run_dir, classes or {}))
        spec = data if data is not None else own_data(run_dir, run)  # never a path of run.json
        if spec is None:
            drawn = _model_figures(run, run_dir, model)
            parts.append("<p>The run names no data (saved from Python): the figures that "
                         "need none; <code>elbokit report --data SPEC</code> draws the "
                         "rest.</p>" + drawn)
        else:
            given = data is not None  # the caller's data, read with its options (or the run's)
            read_with = load_options if given and load_options is not None else \
                run.get("load_options", {})
            dataset = dataset_of(run, run_dir, model, spec, datasets, loaded, read_with)
            if given:
                parts.append(given_data_note(run, run_dir, spec))
                metrics = metrics or scores(model, dataset, spec, parts)
            drawn = _data_figures(run, run_dir, model, dataset, options)
            parts.append(drawn)
        if "<figure" not in drawn:  # every figure is one <figure> of _image
            raise ModelFileError(no_figure(run_dir, spec))
    metric_rows = [{"metric": k, "value": v} for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
    parts[:0] = [f"<h2>{html.escape(run_dir.name)} ({html.escape(str(kind))})</h2>",
                 _table(metric_rows, ["metric", "value"])]
    parts.append("<details><summary>settings (run.json)</summary><pre>"
                 + html.escape(json.dumps(run, indent=2)) + "</pre></details>")
    summary = {"model": run_dir.name, "kind": kind}
    summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    return "\n".join(parts), summary


def _data_figures(run: dict, run_dir: Path, model, dataset, options: dict | None) -> str:
    """The figures and the codes' table of a run on its data."""
    options = options or {"rotation": "fitted", "normalize": True, "cut": DEFAULT_CUT}
    if len(dataset.test):
        return (_figures(run, run_dir, model, dataset, options)
                + _codes_table(model, dataset))
    # --test-fraction 0: the figures of held-out rows drawn on the training rows
    return (f"<p>{html.escape(NO_TEST_SET)}; the figures show the training rows.</p>"
            + _figures(run, run_dir, model, _train_as_test(dataset), options))


def _model_figures(run: dict, run_dir: Path, model) -> str:
    """The figures a model draws without data: samples (one row per class for a
    conditional VAE), the 2-D manifold and the training curve."""
    from .plots import class_samples_figure, curves_figure, manifold_figure, samples_figure
    from .runs import image_shape_of, latent_of

    out_dir = run_dir / "figures"
    recorded_none = "image_shape" in run and run["image_shape"] is None
    shape = None if recorded_none else image_shape_of(run_dir, model.n_features_in_)
    draw = {}
    if shape is not None and model.conditional and model.classes_ is not None:
        draw["samples_by_class"] = lambda p: class_samples_figure(
            model, shape, p, label_names=run.get("target_names"))
    elif shape is not None and not model.conditional:
        draw["samples"] = lambda p: samples_figure(model, shape, p)
        if latent_of(model) == 2:
            draw["manifold"] = lambda p: manifold_figure(model, shape, p)
    history = model.training_curve()
    if history:
        draw["curves"] = lambda p: curves_figure(history, p)
    figures = []
    for name, figure in draw.items():
        figure(out_dir / f"{name}.png")
        figures.append(_image(str(out_dir / f"{name}.png"), _CAPTIONS.get(name, name)))
    return "".join(figures)


def _train_as_test(dataset):
    """A data set without test rows, with its training rows in their place (for the
    figures of a run fitted on every row)."""
    import dataclasses

    return dataclasses.replace(dataset, test=dataset.train, test_labels=dataset.train_labels)


def _codes_table(model, dataset) -> str:
    """What the codes are good for: linear-probe accuracies (logistic regression and a
    linear SVM on the codes of 100, 1000 and all labelled training rows, scored on the
    test codes) and, for a model with a density, I(x; z) beside the KL and active units
    (:func:`elbokit.evaluate.latent_diagnostics`). Empty without labels or with NaN."""
    import warnings

    import numpy as np

    from .evaluate import latent_diagnostics, linear_probe
    from .protocol import optional

    if model.conditional:
        return ""  # a conditional VAE's codes are given the label: nothing left to probe
    if dataset.train_labels is None or dataset.test_labels is None \
            or np.isnan(dataset.train).any() or np.isnan(dataset.test).any() \
            or np.unique(dataset.train_labels).size < 2:
        return ""
    rows = [{"probe": name, **{f"{n} labels": v for n, v in accuracies.items()}}
            for name, accuracies in linear_probe(model, dataset.train, dataset.train_labels,
                                                 dataset.test, dataset.test_labels).items()]
    parts = ["<h3>the codes</h3><p>linear-probe test accuracy (chance: "
             f"{1 / np.unique(dataset.train_labels).size:.2f})</p>",
             _table(rows, list(rows[0]), 3)]
    # I(x; z) and the KL to the prior describe a VAE's q(z|x), not a linear model's
    # exact posterior
    if model.has_density and not model.linear_gaussian:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            diag = latent_diagnostics(model, dataset.test)
        values = {k: diag[k] for k in ("mutual_information", "kl", "marginal_kl",
                                       "active_units", "latent_dim")}
        if "active_per_layer" in diag:  # two stochastic layers: z1's, then z2's
            layers = optional(model, "latent_layers_")
            values["active per layer"] = ", ".join(
                f"z{i + 1} {a}/{size}" for i, (a, size) in
                enumerate(zip(diag["active_per_layer"], layers)))
        parts.append("<p>I(x; z) under q (aggregate-posterior estimate, Hoffman &amp; "
                     "Johnson 2016) and E_x KL(q(z|x) || p(z)) = I(x; z) + KL(q(z) || p(z)), "
                     "nats per test row</p>" + _table([values], list(values), 3))
        parts += [f"<p><b>warning:</b> {html.escape(str(w.message))}</p>" for w in caught]
    return "".join(parts)


def _ae_vae_section(path: Path, datasets: dict, loaded: dict) -> str:
    """The AE-vs-VAE figure (:func:`elbokit.plots.ae_vae_figure`) when ``path`` holds a
    run of an autoencoder (point codes: no density) and one of a VAE (a density, not
    linear-Gaussian, not conditional) fitted on the same image data; else nothing.
    ``loaded``: the runs' (data key, model) as :func:`_section` loaded them."""
    from .plots import ae_vae_figure

    found = {}
    for key, model in loaded.values():
        if model.linear_gaussian or model.conditional:
            continue
        role = "vae" if model.has_density else "ae"
        found.setdefault(key, {}).setdefault(role, model)
    for key, models in found.items():
        if len(models) == 2 and datasets[key].image_shape is not None:
            dataset, figure = datasets[key], path / "figures" / "ae_vs_vae.png"
            ae_vae_figure(models["ae"], models["vae"], dataset.train, dataset.test,
                          dataset.image_shape, figure)
            return ("<h2>autoencoder vs VAE</h2>"
                    + _image(str(figure), "the AE's decoder fed N(0, I) codes and codes from a "
                             "Gaussian fitted to its codes, beside the VAE's prior samples; "
                             "the AE's single reconstruction beside the VAE's per-pixel std "
                             "over posterior draws"))
    return ""


def _custom_classes(run_dir: Path, classes: dict) -> dict:
    """Of the caller's network classes, those this run's model needs (the custom parts
    its model.json's architecture names): one report may show runs with custom and
    with preset networks."""
    if not any(classes.values()):
        return {}
    meta = read_json(run_dir / MODEL_FILE, "model file")
    settings = meta.get("settings")
    architecture = settings.get("architecture") if isinstance(settings, dict) \
        else meta.get("architecture")
    if not isinstance(architecture, dict):
        return {}  # the model's loader names the problem
    return {name: cls for name, cls in classes.items()
            if architecture.get(name.removesuffix("_class")) == "custom"}


def write_report(path: str | os.PathLike, *, with_figures: bool = True,
                 rotation: str = "fitted", normalize: bool = True, cut: float = DEFAULT_CUT,
                 data: str | None = None, load_options: dict | None = None,
                 networks: dict | None = None, encoder_class=None,
                 decoder_class=None) -> Path:
    """Write ``report.html`` into ``path`` (a run directory or a directory of runs).

    Each run gets its metrics, its settings and its figures, drawn on ``data`` (a spec
    as :func:`elbokit.data.load` takes, read with ``load_options``, its ``resize`` and
    ``crop`` keywords; else the run's own) split as the fit split it. The report reads
    no file a run directory names: without ``data`` a run fitted on a built-in data set
    is drawn on it, a run fitted on a file is a :class:`~elbokit.exceptions.ParameterError`
    saying to pass it, and a run that names none (saved by ``VAE.save`` from Python)
    gets the figures that need no data (samples, the 2-D manifold, the training curve).
    ``data`` is checked against the digest the run recorded: other data are named on
    the page and in a :class:`~elbokit.exceptions.DataMismatchWarning`; images of
    another shape than the model's are refused; a directory of runs fitted on different
    data (by their digests) is a ParameterError saying to report each run alone (one
    ``data`` cannot be the data of each). run.json is never rewritten. Names
    from files are drawn as plain text (:func:`elbokit._text.plain_text`) and escaped
    in the HTML. A run whose section would hold no figure is a
    :class:`~elbokit.exceptions.ModelFileError` (no report is written).

    ``networks``: the classes of VAEs' custom networks by class name, as
    :func:`elbokit.nn.protocols.import_networks` returns them (``elbokit report
    --networks FILE.py``); ``encoder_class``, ``decoder_class``: the classes themselves
    (see ``VAE.load``). Either is needed to draw the figures of such runs.

    ``rotation``, ``normalize`` and ``cut`` apply to the factor solution of the
    linear-Gaussian runs on data that are not images: ``rotation`` is ``"fitted"``
    (the model's own rotation setting), ``"none"`` or one of
    :data:`elbokit.linear.rotations.ROTATIONS`; ``normalize`` is Kaiser's row
    normalization; loadings below ``cut`` in absolute value are left blank in the
    loadings table (psych's ``print(fa, cut=0.3)``)."""
    from ._validation import check_choice, check_float

    check_choice(rotation, "rotation", REPORT_ROTATIONS)
    cut = check_float(cut, "cut", low=0.0, high=1.0)
    options = {"rotation": rotation, "normalize": bool(normalize), "cut": cut}
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"run directory {path} does not exist")
    sections, summaries, datasets, loaded = [], [], {}, {}
    run_dirs = _run_dirs(path)
    if with_figures:
        check_one_data(path, run_dirs, data)  # one --data: the runs' own data alike
    with plain_text():  # names from files drawn as written: no mathtext, no TeX
        for run_dir in run_dirs:
            section, summary = _section(run_dir, with_figures, datasets, options,
                                        {"encoder_class": encoder_class,
                                         "decoder_class": decoder_class}, loaded,
                                        data=data, networks=networks,
                                        load_options=load_options)
            sections.append(section)
            summaries.append(summary)
        ae_vae = _ae_vae_section(path, datasets, loaded)
    columns = ["model", "kind"] + [c for c in ("train_loglike", "test_loglike", "test_elbo",
                                               "test_loglike_is", "test_bits_per_dim",
                                               "test_reconstruction_error",
                                               "active_units", "fit_seconds", "iterations")
                                   if any(c in s for s in summaries)]
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>elbokit report: {html.escape(path.name)}</title>"
            f"<style>{_STYLE}</style></head><body>"
            f"<h1>elbokit report: {html.escape(str(path))}</h1>"
            "<p>Log-likelihoods and ELBOs in nats per sample on held-out data.</p>"
            + _table(summaries, columns) + "\n".join(sections) + "</body></html>")
    page = page.replace("</body></html>", ae_vae + "</body></html>")
    out = path / REPORT_FILE
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
