"""The reference docs: the griffe extension that turns the docstrings' Sphinx roles
into checked cross-references, and the strict build of ``make docs``."""

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _extension():
    spec = importlib.util.spec_from_file_location("griffe_roles", ROOT / "docs" / "griffe_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_roles_become_crossrefs_that_autorefs_checks(tmp_path):
    griffe = pytest.importorskip("griffe")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""Pkg."""\n')
    (package / "_private.py").write_text('def helper():\n    """Help."""\n')
    (package / "mod.py").write_text(textwrap.dedent('''
        """See :class:`~pkg.mod.Model`, :func:`.mod.run`, :func:`pkg._private.helper`
        and :class:`Missing`."""
        from ._private import helper


        class Model:
            """A model; :meth:`fit` fits it, :func:`helper` helps.

            Parameters
            ----------
            size : the number of things, at least one.
            seed : int
                The seed.
            """

            def fit(self):
                """Fit."""


        def run():
            """Run."""
        '''))
    loaded = griffe.load("pkg", search_paths=[str(tmp_path)],
                         extensions=griffe.load_extensions(_extension().SphinxRoles))
    module, model = loaded["mod"], loaded["mod.Model"]
    assert module.docstring.value.startswith(
        "See [`Model`][pkg.mod.Model], [`.mod.run`][pkg.mod.run], "
        "`pkg._private.helper`")  # private: plain code, nothing to link to
    assert "[`Missing`][Missing]" in module.docstring.value  # left for autorefs to fail on
    assert "[`fit`][pkg.mod.Model.fit]" in model.docstring.value  # a member in scope
    assert "`helper` helps" in model.docstring.value  # an import, followed: private
    # "name : description." read as numpydoc's name + description; a real type stays
    assert "size\n    the number of things, at least one." in model.docstring.value
    assert "seed : int\n" in model.docstring.value


@pytest.mark.slow
def test_make_docs_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                             str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    page = (tmp_path / "site" / "reference" / "callbacks" / "index.html").read_text()
    assert 'id="elbokit.nn.callbacks.TensorBoardCallback"' in page
    guide = (tmp_path / "site" / "index.html").read_text()
    assert "Dependencies and why" in guide  # the home page is made of the README's sections
    for page in ("guide/vae", "benchmarks", "decisions/precision-auto", "changelog"):
        assert (tmp_path / "site" / page / "index.html").exists(), page
