"""The smaller points of issue 30: the progress bar shows the epoch running and the
validation ELBO; a tracking backend that cannot start leaves nothing in --out; a
conditional VAE's --label takes the class name as well as its index."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import one_line_exit_2  # noqa: E402
from elbokit.cli import main  # noqa: E402
from elbokit.data import load  # noqa: E402

FAST = ["--latent", "2", "--hidden", "16", "--epochs", "1", "--likelihood", "bernoulli",
        "--no-progress"]


# --------------------------------------------------------------------------- progress bar

class RecordingBar:
    """A stand-in for tqdm that records what each redraw shows: (steps, postfix)."""

    drawn: list = []

    def __init__(self, total=None, disable=False, **kwargs):
        self.disable, self.n, self.postfix = disable, 0, {}

    def set_postfix(self, fields=None, refresh=True):
        self.postfix = dict(fields or {})
        if refresh:
            self.drawn.append((self.n, dict(self.postfix)))

    def update(self, n=1):
        self.n += n
        self.drawn.append((self.n, dict(self.postfix)))

    def close(self):
        pass


def test_the_bar_shows_the_epoch_running_and_the_validation_elbo(monkeypatch):
    import elbokit.progress as progress
    from elbokit.nn import VAE

    monkeypatch.setattr(progress, "tqdm", RecordingBar)
    RecordingBar.drawn = []
    X = load("digits").train[:400]
    vae = VAE(2, hidden=(8,), epochs=3, batch_size=100, likelihood="bernoulli", progress=True)
    vae.fit(X[:300], validation=X[300:])
    steps = 3  # per epoch
    for epoch in (1, 2, 3):
        # the redraw that counts an epoch's last step names that epoch, not the one before
        shown = [fields for n, fields in RecordingBar.drawn if n == steps * epoch]
        assert shown and shown[0]["epoch"] == str(epoch) and "train_elbo" in shown[0]
        # after the epoch's validation the bar shows its ELBO, and keeps it
        val = f"{vae.history_[epoch - 1]['val_elbo']:.2f}"
        assert shown[-1]["val_elbo"] == val
    later = [fields for n, fields in RecordingBar.drawn if n == steps * 2]
    assert later[0]["val_elbo"] == f"{vae.history_[0]['val_elbo']:.2f}"


# --------------------------------------------------------------------------- tracking

class FailsAt:
    """A callback that raises at training start, or at the end of epoch ``epoch``."""

    def __init__(self, epoch=0):
        self.epoch = epoch

    def on_train_start(self, model, config, data):
        if self.epoch == 0:
            raise RuntimeError("the tracking store is down")

    def on_epoch_end(self, epoch, record, model):
        if epoch == self.epoch:
            raise RuntimeError("the tracking store went down")

    def on_train_end(self, model, history, error=None):
        pass


def test_a_failed_start_leaves_nothing_and_a_later_failure_keeps_the_checkpoint(tmp_path):
    from elbokit.nn import VAE
    from elbokit.runs import fit_and_record

    digits = load("digits")
    for epoch, out in ((0, tmp_path / "start"), (2, tmp_path / "later")):
        vae = VAE(2, hidden=(8,), epochs=3, likelihood="bernoulli", progress=False)
        with pytest.raises(RuntimeError, match="went down" if epoch else "is down"):
            fit_and_record(vae, digits, out, spec="digits", checkpoint=True,
                           callbacks=[FailsAt(epoch)])
    assert not (tmp_path / "start").exists()
    saved = json.loads((tmp_path / "later" / "checkpoints" / "checkpoint.json").read_text())
    assert saved["epoch"] == 2  # the last good epoch, to --resume from


def test_a_tensorboard_that_cannot_start_leaves_out_as_it_was(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = tmp_path / "run"
    one_line_exit_2(["fit", "vae", *FAST, "--out", str(out), "--tensorboard",
                     str(blocker / "tb")], capsys, "TensorBoard: cannot write to")
    assert not out.exists()
    out.mkdir()
    assert main(["fit", "vae", *FAST, "--out", str(out), "--tensorboard",
                 str(blocker / "tb")]) == 2
    assert list(out.iterdir()) == []


def test_an_mlflow_store_that_cannot_open_leaves_nothing(tmp_path, capsys):
    pytest.importorskip("mlflow")
    out = tmp_path / "run"
    one_line_exit_2(["fit", "vae", *FAST, "--out", str(out), "--mlflow", "bogus://store"],
                    capsys, "MLflow (bogus://store)")
    assert not out.exists()


# --------------------------------------------------------------------------- --label NAME

@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """A folder of 8x8 grey PNGs in two class folders, cat (bright top) and dog (bright
    bottom), and a conditional VAE fitted on it by the CLI."""
    from PIL import Image

    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    for name, rows in (("cat", slice(0, 4)), ("dog", slice(4, 8))):
        (root / "images" / name).mkdir(parents=True)
        for i in range(20):
            image = rng.integers(0, 60, (8, 8)).astype(np.uint8)
            image[rows] += 180
            Image.fromarray(image).save(root / "images" / name / f"{i}.png")
    out = root / "run"
    assert main(["fit", "vae", "--data", str(root / "images"), *FAST, "--condition-on",
                 "labels", "--out", str(out)]) == 0
    return out


def test_sample_label_takes_the_class_name(pets, tmp_path, capsys):
    assert json.loads((pets / "run.json").read_text())["target_names"] == ["cat", "dog"]
    by_name, by_index = tmp_path / "name.png", tmp_path / "index.png"
    assert main(["sample", str(pets), "-n", "4", "--label", "dog", "--out", str(by_name)]) == 0
    assert main(["sample", str(pets), "-n", "4", "--label", "1", "--out", str(by_index)]) == 0
    assert by_name.read_bytes() == by_index.read_bytes()  # the same class, the same grid
    err = one_line_exit_2(["sample", str(pets), "--label", "cow", "--out",
                           str(tmp_path / "c.png")], capsys, "--label 'cow'")
    assert "0 (cat), 1 (dog)" in err


def test_fit_vae_prints_the_likelihood_it_resolved(tmp_path, capsys):
    assert main(["fit", "vae", "--latent", "2", "--hidden", "8", "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "v")]) == 0
    assert "vae (L=2, bernoulli) on digits" in capsys.readouterr().out  # not "auto"


@pytest.mark.parametrize("command", [["compare", "--models", "pca"], ["demo"]])
def test_an_unbounded_k_is_refused_before_any_fit(tmp_path, capsys, command):
    one_line_exit_2(command + ["--k", "1000000000", "--out", str(tmp_path / "o")], capsys,
                    "--k = 1000000000 importance samples")
    assert not (tmp_path / "o").exists()
