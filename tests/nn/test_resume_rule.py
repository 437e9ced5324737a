"""The resume rule, declared once on the training config's fields: ``VAE.fit(resume=True)``
and ``elbokit fit vae --resume`` refuse, warn and allow the same changes, with the same
message."""

import dataclasses
import warnings

import pytest

pytest.importorskip("torch")

from elbokit.cli import main  # noqa: E402
from elbokit.exceptions import ParameterError  # noqa: E402
from elbokit.nn import VAE, TrainingConfig  # noqa: E402
from elbokit.nn.train.resume import resume_changes, resume_rules  # noqa: E402
from elbokit.runs import with_names  # noqa: E402

CLI = ["fit", "vae", "--data", "digits", "--latent", "2", "--hidden", "8", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-epoch ``fit vae`` run; each test resumes a copy of its directory."""
    out = tmp_path_factory.mktemp("resume") / "vae"
    assert main(CLI + ["--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def out(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / "vae")


def _cli_resume(out, extra, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(CLI + ["--epochs", "2", "--resume", "--out", str(out), *extra])
    return code, capsys.readouterr().err.strip()


def _library_resume(out, digits, **changes):
    """The library's resume of the same checkpoint: the run's own settings, changed."""
    vae = VAE.load(out)
    X = with_names(digits.train, list(vae.feature_names_in_))  # as the CLI fits: named pixels
    vae.set_params(**{"epochs": 2, **changes})
    return vae.fit(X, checkpoint_dir=out / "checkpoints", resume=True)


def test_every_training_setting_has_one_rule():
    rules = resume_rules()
    assert set(rules) == {f.name for f in dataclasses.fields(TrainingConfig)}
    assert {name for name, rule in rules.items() if rule == "free"} == \
        {"epochs", "patience", "device", "progress"}
    assert {name for name, rule in rules.items() if rule == "warn"} == \
        {"precision", "fused_step"}
    assert rules["beta"] == rules["free_bits"] == rules["kl_warmup"] == "refuse"


def test_a_setting_left_to_the_fit_is_not_compared():
    saved = TrainingConfig(precision="bfloat16", beta=2.0)
    changes = resume_changes(saved, {"precision": None, "beta": 2.0, "lr": 0.01})
    assert changes == {"refuse": [("lr", 0.001, 0.01)], "warn": [], "free": []}


@pytest.mark.parametrize("name, flag, value", [
    ("beta", "--beta", 2.0), ("free_bits", "--free-bits", 0.5),
    ("kl_warmup", "--kl-warmup", 3), ("lr", "--lr", 0.01),
    ("max_minutes", "--max-minutes", 5.0)])
def test_the_library_refuses_what_the_cli_refuses(out, digits, capsys, name, flag, value):
    code, err = _cli_resume(out, [flag, str(value)], capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    with pytest.raises(ParameterError) as refused:
        _library_resume(out, digits, **{name: value})
    message = str(refused.value)
    assert f"{name} changed from " in message and f"to {value!r}" in message
    assert message in err  # the one message, from the one rule
    assert main(CLI + ["--epochs", "1", "--resume", "--out", str(out)]) == 0  # untouched


def test_a_change_allowed_stays_allowed_in_both(out, digits, capsys):
    code, err = _cli_resume(out, ["--device", "cpu"], capsys)  # the checkpoint's: "auto"
    assert code == 0 and err == "", err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # epochs and device change without a warning
        vae = _library_resume(out, digits, device="cpu", epochs=3)
    assert len(vae.history_) == 3


def test_a_change_of_rounding_warns_in_both(out, digits, capsys):
    with pytest.warns(UserWarning, match=r"fused_step changed from True \(the checkpoint's\) "
                                         "to False"):
        code, err = _cli_resume(out, ["--no-fused-step"], capsys)
    assert code == 0
    with pytest.warns(UserWarning, match=r"fused_step changed from False \(the checkpoint's\) "
                                         "to True"):
        _library_resume(out, digits, fused_step=True, epochs=3)
