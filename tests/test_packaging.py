"""Packaging: the version, the py.typed marker, the license and extras of
pyproject.toml, and device="auto" on Apple's MPS."""

import tomllib
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

import pytest

import elbokit

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_version_comes_from_the_installed_metadata(capsys):
    from elbokit.cli import main

    assert elbokit.__version__ == version("elbokit")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"elbokit {version('elbokit')}"


def test_py_typed_is_in_the_package_and_its_data():
    assert (files("elbokit") / "py.typed").is_file()
    project = tomllib.loads(PYPROJECT.read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["elbokit"]


def test_license_is_an_spdx_string_with_a_backend_that_reads_it():
    project = tomllib.loads(PYPROJECT.read_text())
    assert project["project"]["license"] == "MIT"  # the table form warns on every build
    # PEP 639 license expressions need setuptools >= 77
    assert "setuptools>=77" in [r.split(";")[0].replace(" ", "")
                                for r in project["build-system"]["requires"]]


def test_optional_extras():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    names = {name: {r.split(">")[0].split("[")[0] for r in reqs} for name, reqs in extras.items()}
    assert {"dask"} <= names["dask"]
    assert {"tensorboard", "mlflow-skinny"} <= names["tracking"]
    assert {"mkdocs", "mkdocstrings"} <= names["docs"]


def test_device_auto_takes_mps_where_cuda_is_absent(monkeypatch):
    torch = pytest.importorskip("torch")
    from elbokit.exceptions import ParameterError
    from elbokit.nn.train import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ParameterError, match="MPS is not available"):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"  # CUDA first
