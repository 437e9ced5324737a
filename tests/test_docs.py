"""The manual cannot drift: every ```python block of the README runs, in order, in one
namespace (as a reader would paste them), and every docstring example in the package
passes doctest."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import warnings
from pathlib import Path

import pytest

import elbokit

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def readme_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each ```python block of the README."""
    text = README.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def test_readme_has_python_blocks():
    assert len(readme_blocks()) >= 4


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    """Run the blocks in a scratch directory (they write runs/...)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for line, code in readme_blocks():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as exc:  # name the block that broke
                pytest.fail(f"README block at line {line} failed: {type(exc).__name__}: {exc}")


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
