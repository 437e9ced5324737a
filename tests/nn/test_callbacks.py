"""Training callbacks: the hook's calls and records, TensorBoard's event files read
back, MLflow's local store, the CLI's --tensorboard / --mlflow, missing packages."""

import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from elbokit.data import load  # noqa: E402
from elbokit.exceptions import (MissingDependencyError, ParameterError,  # noqa: E402
                                TrackingError)
from elbokit.nn import VAE  # noqa: E402
from elbokit.nn.callbacks import Callback, elbo_terms, image_grid  # noqa: E402
from elbokit.nn.train import TrainingInterrupted  # noqa: E402

SMALL = dict(hidden=(16,), epochs=3, batch_size=256, progress=False)


@pytest.fixture(scope="module")
def digits():
    data = load("digits")
    return data.train[:600], data.test[:200]


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.calls, self.records, self.stop_at = [], [], stop_at

    def on_train_start(self, model, config, data):
        self.calls.append("start")
        self.config, self.n = config, data.train.shape[0]

    def on_epoch_end(self, epoch, record, model):
        self.calls.append(epoch)
        self.records.append(record)
        if epoch == self.stop_at:
            raise KeyboardInterrupt

    def on_train_end(self, model, history, error=None):
        self.calls.append("end")
        self.history, self.error = list(history), error


def test_a_custom_callback_sees_every_epoch_with_its_record(digits):
    train, val = digits
    recorder = Recorder()
    vae = VAE(3, lr=2e-3, lr_schedule="cosine", **SMALL).fit(train, validation=val,
                                                             callbacks=[recorder])
    assert recorder.calls == ["start", 1, 2, 3, "end"]
    assert recorder.error is None and recorder.history == vae.history_
    steps = int(np.ceil(len(train) / 256))
    sizes = np.array([256] * (steps - 1) + [len(train) - 256 * (steps - 1)])
    for record, entry in zip(recorder.records, vae.history_):
        assert {k: record[k] for k in entry} == entry  # the history's entry, plus:
        assert record["step_elbo"].shape == (steps,)
        # the epoch's ELBO is the size-weighted mean of its steps'
        assert np.average(record["step_elbo"], weights=sizes) == pytest.approx(
            entry["train_elbo"], rel=1e-5)
        assert "lr" not in entry
    # cosine schedule: the lr at the end of epoch e of 3
    expected = [0.5 * 2e-3 * (1 + np.cos(np.pi * e / 3)) for e in (1, 2, 3)]
    assert [r["lr"] for r in recorder.records] == pytest.approx(expected, abs=1e-12)


def test_train_end_is_told_of_an_interruption(digits):
    first, second = Recorder(stop_at=2), Recorder()
    with pytest.raises(TrainingInterrupted):
        VAE(3, **SMALL).fit(digits[0], callbacks=[first, second])
    assert second.calls == ["start", 1, "end"]  # the second never saw epoch 2
    assert isinstance(second.error, KeyboardInterrupt) and len(second.history) == 2


def test_a_callback_without_the_methods_is_refused(digits):
    with pytest.raises(ParameterError, match="lacks on_train_start"):
        VAE(3, **SMALL).fit(digits[0], callbacks=[object()])


def test_elbo_terms_add_up_to_the_elbo(digits):
    train, val = digits
    vae = VAE(3, **SMALL).fit(train)
    terms = elbo_terms(vae.model_, torch.as_tensor(val), seed=0)
    # the same seeded draw as L_B: reconstruction - KL is the ELBO
    assert terms["reconstruction"] - terms["kl"] == pytest.approx(
        float(vae.elbo(val, "b", random_state=0).mean()), rel=1e-5)
    assert terms["kl_per_dim"].shape == (3,) and (terms["kl_per_dim"] >= 0).all()


def test_image_grid_tiles_with_gaps():
    images = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)
    grid = image_grid(images, columns=2)
    assert grid.shape == (1, 2, 7)
    assert grid[0, :, 3].tolist() == [0, 0] and grid.max() == 1 and grid.min() == 0
    assert grid[0, 1, 6] == 1.0  # the last pixel of the last image is the maximum


def test_tensorboard_scalars_read_back_as_the_history(digits, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from elbokit.nn import TensorBoardCallback

    train, val = digits
    tb = TensorBoardCallback(tmp_path / "tb", images_every=2, image_shape=(8, 8))
    vae = VAE(3, **SMALL).fit(train, validation=val, callbacks=[tb])
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = lambda tag: [(e.step, e.value) for e in events.Scalars(tag)]  # noqa: E731
    history = vae.history_
    assert scalars("elbo/train") == [(h["epoch"], pytest.approx(h["train_elbo"], rel=1e-6))
                                     for h in history]
    assert scalars("elbo/validation") == [(h["epoch"], pytest.approx(h["val_elbo"], rel=1e-6))
                                          for h in history]
    assert [v for _, v in scalars("lr")] == pytest.approx([1e-3] * 3)
    assert len(scalars("elbo/train_step")) == 3 * 3  # 3 steps an epoch
    assert [s for s, _ in scalars("elbo/train_step")] == list(range(1, 10))
    kl = sum(scalars(f"kl_per_dim/{j:03d}")[-1][1] for j in range(3))
    assert scalars("elbo_terms/kl")[-1][1] == pytest.approx(kl, rel=1e-5)
    # the last epoch's terms are of the fitted model on the first validation rows
    recon = scalars("elbo_terms/reconstruction")[-1][1]
    assert recon - kl == pytest.approx(float(vae.elbo(val, "b").mean()), rel=1e-4)
    assert all(v > 0 for _, v in scalars("images_per_second"))
    # image grids at epoch 2 (images_every) and 3 (the last); 8 x 8 tiles, 1-pixel gaps
    samples = events.Images("images/samples")
    assert [i.step for i in samples] == [2, 3] and samples[0].width == 8 * 9 - 1
    assert [i.step for i in events.Images("images/reconstructions")] == [2, 3]


def test_mlflow_local_store_lists_the_run_params_and_metrics(digits, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for it
    from mlflow.tracking import MlflowClient

    from elbokit.nn import MLflowCallback

    train, val = digits
    callback = MLflowCallback(tmp_path / "mlruns", experiment="test")
    vae = VAE(3, **SMALL).fit(train, validation=val, callbacks=[callback])
    (tmp_path / "note.txt").write_text("hello")
    callback.log_artifacts(tmp_path / "note.txt")
    client = MlflowClient((tmp_path / "mlruns").absolute().as_uri())
    runs = client.search_runs([client.get_experiment_by_name("test").experiment_id])
    assert [r.info.run_id for r in runs] == [callback.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["latent_dim"] == "3" and run.data.params["hidden"] == "16"
    assert run.data.params["lr"] == "0.001" and run.data.params["epochs"] == "3"
    history = client.get_metric_history(callback.run_id, "train_elbo")
    assert [(m.step, m.value) for m in history] == [
        (h["epoch"], pytest.approx(h["train_elbo"])) for h in vae.history_]
    assert {"val_elbo", "reconstruction", "kl", "lr", "images_per_second"} <= \
        set(run.data.metrics)
    assert [a.path for a in client.list_artifacts(callback.run_id)] == ["note.txt"]


def test_mlflow_failures_are_one_line(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    from elbokit.nn import MLflowCallback

    callback = MLflowCallback("http://127.0.0.1:9/")

    def refuse():
        raise MlflowException("the store said no\nmore detail")

    with pytest.raises(TrackingError, match=r"^MLflow \(http://127.0.0.1:9/\): the store said "
                                            r"no$"):
        callback._call(refuse)
    with pytest.raises(ParameterError, match="fit with this callback first"):
        callback.log_artifacts(tmp_path)


@pytest.mark.parametrize("module, name", [("torch.utils.tensorboard", "TensorBoardCallback"),
                                          ("mlflow.tracking", "MLflowCallback")])
def test_a_missing_package_names_the_extra(module, name, monkeypatch, tmp_path):
    import elbokit.nn.callbacks as callbacks

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install elbokit\[tracking\]"):
        getattr(callbacks, name)(tmp_path)


@pytest.mark.slow
def test_cli_tensorboard_and_mlflow(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    from elbokit.cli import main

    out, store = tmp_path / "run", tmp_path / "mlruns"
    # a bare --mlflow: MLflow's default store, here the one its variable names
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.absolute().as_uri())
    assert main(["fit", "vae", "--latent", "2", "--hidden", "16", "--epochs", "1",
                 "--no-progress", "--out", str(out), "--mlflow", "--tensorboard",
                 str(tmp_path / "tb")]) == 0
    assert "logged to MLflow run" in capsys.readouterr().out
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    client = MlflowClient(store.absolute().as_uri())
    run, = client.search_runs([client.get_experiment_by_name("elbokit").experiment_id])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.json", "metrics.json", "run.json", "report.html"} <= artifacts
    (tmp_path / "download").mkdir()
    logged = client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "download"))
    assert json.loads(open(logged).read()) == json.loads((out / "metrics.json").read_text())


def test_a_bare_mlflow_option_gets_the_empty_value():
    from elbokit.cli.fit_vae import bare_options

    assert bare_options(["--mlflow"]) == ["--mlflow="]
    assert bare_options(["--mlflow", "--epochs", "1"]) == ["--mlflow=", "--epochs", "1"]
    assert bare_options(["--mlflow", "sqlite:///m.db", "--x"]) == ["--mlflow", "sqlite:///m.db",
                                                                   "--x"]
