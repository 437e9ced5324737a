"""The manual cannot drift: every ```python block of the README and of each page of the
guide (docs/guide/*.md) runs, in order, in one namespace per page (as a reader would
paste them), and every docstring example in the package passes doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import warnings
from pathlib import Path

import pytest

import elbokit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE_PAGES = sorted((ROOT / "docs" / "guide").glob("*.md"))
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path = README) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block of a Markdown page."""
    text = path.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def run_blocks(path: Path) -> None:
    """Run the blocks of ``path`` in order in one namespace; name the block that broke."""
    namespace: dict = {"__name__": "__guide__"}
    for line, code in python_blocks(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"{path.name} block at line {line} failed: "
                            f"{type(exc).__name__}: {exc}")


def test_readme_has_python_blocks():
    assert len(python_blocks(README)) >= 4


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    """Run the blocks in a scratch directory (they write runs/...)."""
    monkeypatch.chdir(tmp_path)
    run_blocks(README)


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=lambda p: p.name)
def test_guide_python_blocks_run(page, tmp_path, monkeypatch):
    assert python_blocks(page), f"{page.name} has no python block"
    monkeypatch.chdir(tmp_path)
    run_blocks(page)


def _modules_with_examples():
    names = []
    for info in pkgutil.walk_packages(elbokit.__path__, prefix="elbokit."):
        module = importlib.import_module(info.name)
        if module.__file__ and ">>>" in Path(module.__file__).read_text():
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _modules_with_examples())
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                                 verbose=False)
    assert result.attempted > 0 and result.failed == 0
