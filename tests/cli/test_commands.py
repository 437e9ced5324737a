import json
import subprocess
import sys

import pytest

from elbokit.cli import main


def test_fit_evaluate_sample(tmp_path, capsys):
    out = tmp_path / "fa"
    assert main(["fit", "fa", "--data", "digits", "--latent", "4", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_loglike"] < metrics["train_loglike"]
    assert metrics["iterations"] > 1 and metrics["fit_seconds"] > 0
    assert json.loads((out / "run.json").read_text())["image_shape"] == [8, 8]
    assert main(["evaluate", str(out), "--data", "digits"]) == 0
    assert f"{metrics['test_loglike']:.3f}" in capsys.readouterr().out
    assert main(["sample", str(out), "-n", "16", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["sample", str(out), "--sampler", "gmm", "--out", str(tmp_path / "h.png")]) == 2
    err = capsys.readouterr().err
    assert "--sampler 'gmm': the fa model" in err and "'prior'" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["fit", "pca", "--latent", "0"], "n_components must be >= 1"),
    (["fit", "pca", "--data", "missing.csv"], "missing.csv does not exist"),
    (["fit", "ppca", "--solver", "magic"], "solver must be one of"),
    (["evaluate", "no-such-run"], "does not exist"),
])
def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys, argv, message):
    argv = argv + (["--out", str(tmp_path / "o")] if argv[0] == "fit" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_under_torchrun_only_rank_0_prints_the_error(tmp_path, capsys, monkeypatch, rank,
                                                     lines):
    for name, value in {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": "2",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)  # every rank fails alike; one line in all
    assert main(["evaluate", str(tmp_path / "no-such-run")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == lines


def test_existing_run_is_left_unchanged(tmp_path, capsys):
    out = tmp_path / "pca"
    assert main(["fit", "pca", "--latent", "3", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["fit", "pca", "--latent", "5", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["fit", "fa", "--latent", "999", "--out", str(out), "--overwrite"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_console_script_runs_without_torch(tmp_path):
    code = ("import sys, elbokit; from elbokit.cli import main; "
            f"rc = main(['fit', 'ppca', '--latent', '3', '--out', r'{tmp_path / 'p'}']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_demo_prints_the_table(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--out", str(out_dir), "--vae-epochs", "2", "--k", "20"]) == 0
    out = capsys.readouterr().out
    for kind in ("pca", "ppca", "fa", "linear-ae", "vae"):
        assert kind in out
        assert (out_dir / kind / "figures" / "samples.png").exists()
    assert "IS k=20" in out and (out_dir / "report.html").exists()
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["fa"]["test_loglike"] > summary["ppca"]["test_loglike"]
    # the importance-sampled log p(x) of the VAE is above its ELBO
    assert summary["vae"]["test_loglike_is"] > summary["vae"]["test_elbo"]
    # the probe column: a logistic regression on the codes, far above chance (0.1)
    assert "probe acc" in out
    assert all(0.5 < summary[kind]["probe_accuracy"] <= 1 for kind in ("pca", "fa", "vae"))


def test_compare_linear_models_and_reload(tmp_path, capsys):
    argv = ["compare", "--data", "digits", "--latent", "3", "--models", "pca,ppca,fa",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "exact" in out and "fa" in out
    table = json.loads((tmp_path / "compare.json").read_text())["models"]
    assert table["fa"]["test_loglike"] > table["ppca"]["test_loglike"] - 1e-9
    assert table["pca"]["test_loglike"] == pytest.approx(table["ppca"]["test_loglike"])
    # a second call loads the saved runs instead of refitting
    stamp = (tmp_path / "fa" / "model.json").stat().st_mtime_ns
    assert main(argv) == 0
    assert (tmp_path / "fa" / "model.json").stat().st_mtime_ns == stamp
    assert main(["compare", "--models", "pca,nope", "--out", str(tmp_path)]) == 2
