"""A run with the researcher's own networks, outside Python (issue 30): --networks on
evaluate, sample, report, compare and fit vae --resume; a run saved by VAE.save() is
reportable (with --data for the figures that need data); a report with no figure is an
error. The networks are defined in a .py file the test writes."""

import json

import pytest

pytest.importorskip("torch")

from conftest import one_line_exit_2  # noqa: E402
from elbokit.cli import main  # noqa: E402
from elbokit.data import load  # noqa: E402

NETWORKS = '''
import torch
from torch import nn


class TinyEncoder(nn.Module):
    def __init__(self, n_features=64, latent_dim=2):
        super().__init__()
        self.config = {"n_features": n_features, "latent_dim": latent_dim}
        self.body = nn.Sequential(nn.Linear(n_features, 12), nn.Tanh())
        self.mean, self.logvar = nn.Linear(12, latent_dim), nn.Linear(12, latent_dim)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h), self.logvar(h)


class TinyDecoder(nn.Module):
    def __init__(self, latent_dim=2, n_features=64):
        super().__init__()
        self.config = {"latent_dim": latent_dim, "n_features": n_features}
        self.hidden = nn.Sequential(nn.Linear(latent_dim, 12), nn.Tanh())
        self.logits = nn.Linear(12, n_features)

    def forward(self, z):
        return self.logits(self.hidden(z))
'''

SETTINGS = {"epochs": 1, "batch_size": 64, "progress": False, "likelihood": "bernoulli"}


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """The networks file and its classes (imported as the CLI imports them)."""
    from elbokit.nn.protocols import import_networks

    path = tmp_path_factory.mktemp("code") / "my_nets.py"
    path.write_text(NETWORKS)
    return path, import_networks(str(path))


def _custom_vae(classes, **settings):
    from elbokit.nn import VAE

    return VAE(2, encoder=classes["TinyEncoder"](), decoder=classes["TinyDecoder"](),
               image_shape=(8, 8), **{**SETTINGS, **settings})


@pytest.fixture(scope="module")
def custom_run(nets, tmp_path_factory):
    """A run directory as `elbokit fit` writes it (fit_and_record), of custom networks."""
    from elbokit.runs import fit_and_record

    out = tmp_path_factory.mktemp("runs") / "custom"
    fit_and_record(_custom_vae(nets[1]), load("digits"), out, spec="digits", checkpoint=True)
    return out


def test_evaluate_and_sample_need_the_networks_and_take_them(nets, custom_run, tmp_path,
                                                             capsys):
    err = one_line_exit_2(["evaluate", str(custom_run)], capsys, "--networks")
    assert "TinyEncoder" in err
    one_line_exit_2(["sample", str(custom_run), "--out", str(tmp_path / "s.png")], capsys,
                    "--networks")
    assert not (tmp_path / "s.png").exists()
    recorded = json.loads((custom_run / "metrics.json").read_text())["test_elbo"]
    assert main(["evaluate", str(custom_run), "--data", "digits", "--networks",
                 str(nets[0])]) == 0
    assert f"{recorded:.3f}" in capsys.readouterr().out  # the same model, the same ELBO
    assert main(["sample", str(custom_run), "-n", "9", "--out", str(tmp_path / "s.png"),
                 "--networks", f"{nets[0]}:TinyDecoder"]) == 2  # the encoder is missing
    assert "TinyEncoder" in capsys.readouterr().err
    assert main(["sample", str(custom_run), "-n", "9", "--out", str(tmp_path / "s.png"),
                 "--networks", str(nets[0])]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_a_networks_source_that_fails_is_one_line(custom_run, tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("import torch\nclass Bad(torch.nn.Module:\n")
    for source in (str(tmp_path / "missing.py"), str(broken)):
        err = one_line_exit_2(["evaluate", str(custom_run), "--networks", source], capsys,
                              source)
        assert "networks" in err


def test_report_draws_a_custom_run_with_the_networks(nets, custom_run, capsys):
    one_line_exit_2(["report", str(custom_run)], capsys, "--networks")
    assert not (custom_run / "report.html").exists()
    assert main(["report", str(custom_run), "--networks", str(nets[0])]) == 0
    page = (custom_run / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5  # samples ... curves, on digits


def test_a_run_saved_from_python_is_reportable(nets, tmp_path, capsys):
    """VAE.save() writes run.json (no data): report draws what needs none; --data draws
    the rest, without changing run.json."""
    digits = load("digits")
    out = tmp_path / "saved"
    _custom_vae(nets[1]).fit(digits.train).save(out)
    run = json.loads((out / "run.json").read_text())
    assert run["data"] is None and run["image_shape"] == [8, 8] and run["kind"] == "vae"
    before = (out / "run.json").read_bytes()
    assert main(["report", str(out), "--networks", str(nets[0])]) == 0
    page = (out / "report.html").read_text()
    # samples, the 2-D manifold, the training curve
    assert page.count("data:image/png;base64,") == 3 and "--data SPEC" in page
    assert main(["report", str(out), "--networks", str(nets[0]), "--data", "digits"]) == 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") > 3 and "reconstructions" in page
    assert "computed by the report on digits" in page and "test_elbo" in page
    assert (out / "run.json").read_bytes() == before
    one_line_exit_2(["report", str(out), "--networks", str(nets[0]), "--data", "wine"],
                    capsys, "wine has 13 features")


def test_report_data_never_rewrites_the_runs_record(custom_run, nets, capsys):
    """--data other than the run's own is checked against the model (and named on the
    page when it is drawn: tests/hostile/test_provenance.py); run.json stays as it is."""
    before = (custom_run / "run.json").read_bytes()
    one_line_exit_2(["report", str(custom_run), "--networks", str(nets[0]), "--data",
                     "iris"], capsys, "iris has 4 features")
    assert (custom_run / "run.json").read_bytes() == before


def test_a_report_with_no_figure_is_an_error(tmp_path, capsys):
    """A model saved without its data and with nothing to draw alone (PCA of a
    5-column table: no image, no training curve) is one line naming --data; no page."""
    import numpy as np

    from elbokit.linear import PCA
    from elbokit.models import save_model

    X = np.random.default_rng(0).normal(size=(60, 5))
    save_model(PCA(2).fit(X), tmp_path / "pca")
    one_line_exit_2(["report", str(tmp_path / "pca")], capsys, "--data SPEC")
    assert not (tmp_path / "pca" / "report.html").exists()
    np.save(tmp_path / "table.npy", X)
    assert main(["report", str(tmp_path / "pca"), "--data", str(tmp_path / "table.npy")]) == 0


def test_fit_vae_resume_takes_the_networks(nets, tmp_path, capsys):
    """A run started in Python with custom networks continues from the shell."""
    from elbokit.runs import fit_and_record

    out = tmp_path / "run"
    fit_and_record(_custom_vae(nets[1]), load("digits"), out, spec="digits", checkpoint=True)
    argv = ["fit", "vae", "--data", "digits", "--latent", "2", "--likelihood", "bernoulli",
            "--batch-size", "64", "--epochs", "2", "--no-progress", "--resume", "--out",
            str(out)]
    one_line_exit_2(argv, capsys, "--networks")
    assert main(argv + ["--networks", str(nets[0])]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    model = json.loads((out / "model.json").read_text())
    assert model["settings"]["architecture"]["encoder_module"]["class"] == "TinyEncoder"
    one_line_exit_2(["fit", "vae", "--networks", str(nets[0]), "--out", str(tmp_path / "new")],
                    capsys, "--networks is for --resume")
    preset = ["fit", "vae", "--data", "digits", "--latent", "2", "--hidden", "8", "--epochs",
              "1", "--likelihood", "bernoulli", "--no-progress", "--out", str(tmp_path / "p")]
    assert main(preset) == 0
    one_line_exit_2(preset + ["--resume", "--networks", str(nets[0])], capsys,
                    "leave out --networks")
    wider = [a if a != "8" else "16" for a in preset]  # the refusal names what differs
    one_line_exit_2(wider + ["--resume"], capsys, "hidden (8,) (the checkpoint's) vs (16,)")


def test_fit_vae_resume_continues_a_fit_started_in_python_on_an_array(nets, tmp_path):
    """VAE.fit(X, checkpoint_dir=...) on an array (no feature names) and save(): the
    shell's --resume goes on with the run's names (none), not the data set's."""
    out = tmp_path / "mine"
    vae = _custom_vae(nets[1])
    vae.fit(load("digits").train, checkpoint_dir=out / "checkpoints")
    vae.save(out)
    assert main(["fit", "vae", "--data", "digits", "--latent", "2", "--likelihood",
                 "bernoulli", "--batch-size", "64", "--epochs", "2", "--no-progress",
                 "--resume", "--out", str(out), "--networks", str(nets[0])]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


def test_compare_takes_networks_and_names_a_bad_source(tmp_path, capsys):
    one_line_exit_2(["compare", "--models", "pca", "--out", str(tmp_path), "--networks",
                     str(tmp_path / "none.py")], capsys, "none.py")


def test_report_data_draws_only_the_runs_that_name_none(nets, custom_run, tmp_path, capsys):
    """A directory with a fitted run (digits) and a run saved from Python: --data draws
    both, the first checked against the data it was fitted on; data that do not fit the
    models are refused."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(custom_run, runs / "fitted")
    _custom_vae(nets[1]).fit(load("digits").train).save(runs / "saved")
    assert main(["report", str(runs), "--networks", str(nets[0]), "--data", "digits"]) == 0
    page = (runs / "report.html").read_text()
    assert page.count("given to the report (the run names none)") == 1
    assert page.count("the data the run was fitted on (the built-in digits)") == 1
    shutil.copytree(custom_run, runs / "saved", dirs_exist_ok=True)  # now fitted as well
    one_line_exit_2(["report", str(runs), "--networks", str(nets[0]), "--data", "iris"],
                    capsys, "iris has 4 features")


def test_report_data_of_a_folder_takes_resize(tmp_path, capsys):
    """A model fitted in Python on a folder read with resize=(8, 8): report --data FOLDER
    needs the same --resize (else one line naming the sizes)."""
    import numpy as np
    from PIL import Image

    from elbokit.nn import VAE

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (12, 12)).astype(np.uint8)).save(
            folder / f"{i}.png")
    data = load(str(folder), resize=(8, 8))
    VAE(2, hidden=(8,), image_shape=(8, 8), **SETTINGS).fit(data.train).save(tmp_path / "v")
    one_line_exit_2(["report", str(tmp_path / "v"), "--data", str(folder)], capsys,
                    "144 features but the model")
    one_line_exit_2(["report", str(tmp_path / "v"), "--resize", "8,8"], capsys,
                    "give --data with them")
    assert main(["report", str(tmp_path / "v"), "--data", str(folder), "--resize", "8,8"]) == 0
    assert "reconstructions" in (tmp_path / "v" / "report.html").read_text()


def test_a_vae_conditioned_on_covariates_gets_its_training_curve(tmp_path):
    """No per-class grid and no samples without covariates: the report still draws the
    training curve (never a page without a figure)."""
    import numpy as np

    from elbokit.nn import VAE

    digits = load("digits")
    covariates = np.random.default_rng(0).normal(size=(len(digits.train), 2))
    vae = VAE(2, hidden=(8,), image_shape=(8, 8), conditional=True, **SETTINGS)
    vae.fit(digits.train, covariates).save(tmp_path / "cov")
    assert main(["report", str(tmp_path / "cov")]) == 0
    page = (tmp_path / "cov" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "ELBO" in page
