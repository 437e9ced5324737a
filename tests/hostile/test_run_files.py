"""Hostile and careless run directories (issue 13): a crafted checkpoint, tampered
model files, sizes that would allocate without bound. Each must give a one-line
ModelFileError (exit code 2 in the CLI), never a crash, a traceback or NaN metrics."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from elbokit.cli import main
from elbokit.exceptions import ModelFileError
from elbokit.persistence import sha256_file

from conftest import edit_json as _rewrite
from conftest import edit_model_json
from conftest import one_line_exit_2 as _one_line_exit_2
from elbokit.models import load_model

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

from elbokit.nn import VAE  # noqa: E402

TINY = ["--data", "digits", "--latent", "2", "--hidden", "8", "--no-progress"]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A 1-epoch CLI VAE run with its checkpoint (a second of training)."""
    out = tmp_path_factory.mktemp("vae") / "run"
    assert main(["fit", "vae", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(vae_run, tmp_path):
    import shutil

    shutil.copytree(vae_run, tmp_path / "run")
    return tmp_path / "run"


def _craft_checkpoint(run_dir: Path, change) -> None:
    """Apply ``change`` to the checkpoint's tensors and rewrite its checksum (nothing
    but the checks themselves protects checkpoint.json)."""
    record = run_dir / "checkpoints" / "checkpoint.json"
    meta = json.loads(record.read_text())
    path = run_dir / "checkpoints" / meta["tensor_file"]
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    meta["sha256"] = sha256_file(path)
    record.write_text(json.dumps(meta))


# --------------------------------------------------------------------------- the segfault

def test_fused_adam_with_short_moments_is_refused_in_a_subprocess():
    """The optimiser state of issue 13 (moments of shape (1,)) made the fused Adam kernel
    write out of bounds (exit 139). restore_optimizer refuses it before load_state_dict."""
    code = textwrap.dedent("""
        import torch
        from elbokit.exceptions import ModelFileError
        from elbokit.nn.train import checkpoint as ckpt
        from elbokit.nn.train import make_optimizer
        model = torch.nn.Linear(3000, 3000)
        opt = make_optimizer(model, 1e-3)
        model(torch.randn(2, 3000)).sum().backward(); opt.step()
        tensors, meta = ckpt.optimizer_tensors(opt)
        tensors["0.exp_avg"] = torch.zeros(1); tensors["0.exp_avg_sq"] = torch.zeros(1)
        fresh = make_optimizer(model, 1e-3)
        try:
            ckpt.restore_optimizer(fresh, tensors, meta, "crafted")
        except ModelFileError as exc:
            print("refused:", exc)
        for _ in range(3):
            model(torch.randn(2, 3000)).sum().backward(); fresh.step()
        print("alive")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: crafted: optimiser state '0.exp_avg' has shape (1,)" in done.stdout
    assert "alive" in done.stdout


@pytest.mark.parametrize("case", ["short-moments", "nan-moment", "negative-sq", "step-vector",
                                  "step-int", "model-nan", "best-shape", "rng-short",
                                  "moment-dtype"])
def test_crafted_checkpoint_tensors_give_one_line(run_copy, capsys, case):
    def change(t):
        if case == "short-moments":
            t["optim.0.exp_avg"] = torch.zeros(1)
            t["optim.0.exp_avg_sq"] = torch.zeros(1)
        elif case == "nan-moment":
            t["optim.1.exp_avg"] = torch.full_like(t["optim.1.exp_avg"], float("nan"))
        elif case == "negative-sq":
            t["optim.1.exp_avg_sq"] = -torch.ones_like(t["optim.1.exp_avg_sq"])
        elif case == "step-vector":
            t["optim.0.step"] = torch.zeros(5)
        elif case == "step-int":
            t["optim.0.step"] = torch.tensor(3, dtype=torch.int64)
        elif case == "model-nan":
            key = next(k for k in t if k.startswith("model."))
            t[key] = torch.full_like(t[key], float("inf"))
        elif case == "best-shape":
            key = next(k for k in t if k.startswith("model."))
            t["best." + key[6:]] = torch.zeros(1)
        elif case == "rng-short":
            t["rng.generator"] = torch.zeros(3, dtype=torch.uint8)
        elif case == "moment-dtype":
            t["optim.0.exp_avg"] = t["optim.0.exp_avg"].double()

    _craft_checkpoint(run_copy, change)
    before = (run_copy / "model.json").read_bytes()
    _one_line_exit_2(["fit", "vae", *TINY, "--epochs", "2", "--resume", "--out",
                      str(run_copy)], capsys, "checkpoint")
    assert (run_copy / "model.json").read_bytes() == before


@pytest.mark.parametrize("field, value, match", [
    ("best_epoch", "x", "best_epoch"), ("best_epoch", 99, "best_epoch"),
    ("epoch", -1, "epoch"), ("epoch", 10**9, "epoch"), ("lr", "fast", "lr"),
    ("lr", -1.0, "lr"), ("history", [{"epoch": "one"}], "history"),
    ("history", [], "history"), ("tensor_file", "../../model.json", "tensor_file"),
    ("betas", [2, 0.9], "betas"), ("params", [0, 1, 99], "parameter groups"),
    ("params", [1, 0], "parameter groups"), ("loop_state", [], "loop_state"),
    ("eps", 2.0, "eps"),
])
def test_tampered_checkpoint_json_gives_one_line(run_copy, capsys, field, value, match):
    def change(meta):
        group = meta["optimizer"]["param_groups"][0]
        if field in ("best_epoch",):
            meta["loop_state"][field] = value
        elif field == "lr":
            group["lr"] = value
            meta["training"]["lr"] = value if field != "lr" else meta["training"]["lr"]
        elif field == "betas":
            group["betas"] = value
        elif field == "params":
            group["params"] = value
        elif field == "eps":
            group["eps"] = value
        else:
            meta[field] = value
        meta.pop("description_sha256", None)  # as an attacker would

    _rewrite(run_copy / "checkpoints" / "checkpoint.json", change)
    _one_line_exit_2(["fit", "vae", *TINY, "--epochs", "2", "--resume", "--out",
                      str(run_copy)], capsys, match)


def test_an_edited_checkpoint_description_is_caught(run_copy, capsys):
    _rewrite(run_copy / "checkpoints" / "checkpoint.json",
             lambda m: m["optimizer"]["param_groups"][0].update(lr=0.5))
    _one_line_exit_2(["fit", "vae", *TINY, "--epochs", "2", "--resume", "--out",
                      str(run_copy)], capsys, "checksum")


def test_an_untampered_checkpoint_still_resumes(run_copy, capsys):
    assert main(["fit", "vae", *TINY, "--epochs", "2", "--resume", "--out",
                 str(run_copy)]) == 0
    assert len(VAE.load(run_copy).history_) == 2


# --------------------------------------------------------------------------- sizes

@pytest.mark.parametrize("field, value", [("latent_dim", 10**9), ("n_features", 5 * 10**7),
                                          ("flow_steps", 10**6), ("hidden", [10**8, 10**8])])
def test_architecture_sizes_are_checked_against_the_header_before_building(
        run_copy, field, value, monkeypatch):
    """A model.json whose sizes were edited is refused from the safetensors header alone:
    no network of that size is built (VAENetwork is only ever built on the meta device)."""
    def change(meta):
        meta["settings"]["architecture"][field] = value
        if field == "flow_steps":
            meta["settings"]["architecture"]["posterior"] = "iaf"

    edit_model_json(run_copy / "model.json", change)
    from elbokit.nn import vae as vae_module

    def no_build(*args, **kwargs):
        raise AssertionError("a network was built before the checks")

    monkeypatch.setattr(vae_module, "VAENetwork", no_build)
    with pytest.raises(ModelFileError, match="weight|layers|architecture"):
        load_model(run_copy)


def test_tensors_field_is_checked_against_the_file(run_copy):
    def change(meta):
        name = next(iter(meta["tensors"]))
        meta["tensors"][name]["shape"] = [1, 1]

    edit_model_json(run_copy / "model.json", change)
    with pytest.raises(ModelFileError, match="tensors"):
        load_model(run_copy)


def test_an_edited_description_is_caught(run_copy):
    _rewrite(run_copy / "model.json",
             lambda m: m["settings"]["architecture"].update(min_variance=0.5))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(run_copy)


def test_a_huge_safetensors_header_claim_is_refused(run_copy):
    weights = run_copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = (2**60).to_bytes(8, "little")
    weights.write_bytes(bytes(data))
    _rewrite(run_copy / "model.json",
             lambda m: m["sha256"].update({"weights.safetensors": sha256_file(weights)}))
    with pytest.raises(ModelFileError, match="header"):
        load_model(run_copy)


def test_sample_request_is_bounded_by_memory(vae_run, tmp_path, capsys):
    _one_line_exit_2(["sample", str(vae_run), "-n", "100000000000", "--out",
                      str(tmp_path / "s.png")], capsys, "GiB")
    assert not (tmp_path / "s.png").exists()


def test_optimizer_flags_from_the_file_are_not_used(run_copy, capsys):
    """Keys of another torch version, or a flipped kernel flag, do not reach Adam: the
    optimiser keeps its own flags and takes only checked numbers from the file."""
    def change(meta):
        group = meta["optimizer"]["param_groups"][0]
        group["fused"] = "yes"
        group["flag_of_a_later_torch"] = True
        meta.pop("description_sha256")

    _rewrite(run_copy / "checkpoints" / "checkpoint.json", change)
    assert main(["fit", "vae", *TINY, "--epochs", "2", "--resume", "--out",
                 str(run_copy)]) == 0
