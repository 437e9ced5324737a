"""The manual cannot drift: every ```python block of the README and of each page of the
guide (docs/guide/*.md) runs, in order, in one namespace per page (as a reader would
paste them; a block whose first line is ``# file: NAME`` is also written to NAME, as the
reader saves it), the shell commands of the worked examples (SHELL_PAGES) run after their
page's Python and print what the page shows, every docstring example in the package passes doctest, the benchmarks page is
the rendering of benchmarks/results/*.json, and every page is in the docs' navigation."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import json
import pkgutil
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import elbokit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GUIDE_PAGES = sorted((ROOT / "docs" / "guide").glob("*.md"))
# pages whose commands need more than one process or machine: shell blocks only
NO_PYTHON = {"distributed.md"}
# worked examples whose ```console blocks run, in order, after the page's Python blocks
SHELL_PAGES = {"colour-images.md"}
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_CONSOLE = re.compile(r"^```console\n(.*?)^```", re.DOTALL | re.MULTILINE)
_FILE = re.compile(r"# file: ([\w.-]+)\n")


def python_blocks(path: Path = README) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block of a Markdown page."""
    text = path.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def run_blocks(path: Path) -> None:
    """Run the blocks of ``path`` in order in one namespace; name the block that broke."""
    namespace: dict = {"__name__": "__guide__"}
    for line, code in python_blocks(path):
        if saved_as := _FILE.match(code):
            Path(saved_as.group(1)).write_text(code)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as exc:
                pytest.fail(f"{path.name} block at line {line} failed: "
                            f"{type(exc).__name__}: {exc}")


def test_readme_is_a_front_page():
    """At most 300 lines, the two commands, three examples, links into the manual."""
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    assert "make demo" in text and "make test" in text
    assert len(python_blocks(README)) == 3
    for page in GUIDE_PAGES:
        assert f"docs/guide/{page.name}" in text, f"README does not link {page.name}"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    """Run the blocks in a scratch directory (they write runs/...)."""
    monkeypatch.chdir(tmp_path)
    run_blocks(README)


def console_commands(path: Path) -> list[tuple[str, list[str]]]:
    """(command, the output lines the page shows under it) of each ``$ `` line of the
    page's ```console blocks."""
    commands = []
    for block in _CONSOLE.findall(path.read_text()):
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif commands:
                commands[-1][1].append(line)
    return commands


def run_console(path: Path) -> None:
    """Run each command as the reader types it (elbokit from this venv); its first output
    line must be the page's (the error line, or what the command says first), its exit
    code 2 where the page shows an error and 0 elsewhere."""
    for command, shown in console_commands(path):
        words = shlex.split(command)
        assert words[0] == "elbokit", command
        done = subprocess.run([str(Path(sys.executable).with_name("elbokit")), *words[1:]],
                              capture_output=True, text=True, timeout=300)
        printed = (done.stdout + done.stderr).splitlines()
        expected = 2 if shown and shown[0].startswith("elbokit: error:") else 0
        assert done.returncode == expected, f"{command}: exit {done.returncode}\n{done.stderr}"
        if shown:
            assert printed and printed[0] == shown[0], f"{command}: printed {printed[:1]}"


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=lambda p: p.name)
def test_guide_python_blocks_run(page, tmp_path, monkeypatch):
    assert python_blocks(page) or page.name in NO_PYTHON, f"{page.name} has no python block"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # the page's own files import, as a script's
    before = set(sys.modules)
    try:
        run_blocks(page)
        if page.name in SHELL_PAGES:
            run_console(page)
    finally:
        for name in set(sys.modules) - before:  # the page's modules (nets.py) leave with it
            if getattr(sys.modules[name], "__file__", None) and \
                    Path(sys.modules[name].__file__).is_relative_to(tmp_path):
                del sys.modules[name]


def test_cited_files_exist():
    """Every tests/... or benchmarks/... file the README and the docs name is there."""
    cited = re.compile(r"\b((?:tests|benchmarks)/[\w/]+\.py)\b")
    pages = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    missing = {(page.name, path) for page in pages for path in cited.findall(page.read_text())
               if not (ROOT / path).exists()}
    assert not missing, sorted(missing)


def _render_docs():
    spec = importlib.util.spec_from_file_location("render_docs",
                                                  ROOT / "benchmarks" / "render_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_page_is_rendered_from_results():
    """docs/benchmarks.md is generated: rerun `benchmarks/render_docs.py` after a benchmark."""
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert page == _render_docs().render(), "stale: run .venv/bin/python benchmarks/render_docs.py"


def test_a_written_result_becomes_the_current_table(tmp_path):
    """What a benchmark script writes (benchmarks/_results.py) is rendered as its current
    table, with its provenance; the run it replaces moves under "Earlier run"."""
    render_docs = _render_docs()
    import _results  # benchmarks/ is on sys.path once render_docs is loaded

    _results.write_markdown("demo", "A demo benchmark", ["| a | b |", "|---|---|", "| x | 1.5 |"],
                            out=tmp_path / "demo-new.json")
    old = json.loads((tmp_path / "demo-new.json").read_text())
    (tmp_path / "demo-old.json").write_text(json.dumps({**old, "date": "2026-01-01",
                                                        "rows": [["y", "2.5"]]}))
    page = render_docs.render(render_docs.load_results(tmp_path))
    assert page.index("| x | 1.5 |") < page.index("### Earlier run: 2026-01-01") \
        < page.index("| y | 2.5 |")
    assert f"commit: `{old['commit'][:12]}`" in page and old["command"] in page


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("*.json")),
                         ids=lambda p: p.name)
def test_results_record_how_they_were_measured(path):
    result = json.loads(path.read_text())
    for field in ("command", "date", "machine", "commit"):
        assert result.get(field), f"{path.name} lacks {field}"


def test_every_page_is_in_the_navigation():
    yaml = pytest.importorskip("yaml")

    def pages(entries):
        for entry in entries:
            if isinstance(entry, str):
                yield entry
            else:
                for value in entry.values():
                    yield from (pages(value) if isinstance(value, list) else [value])

    nav = set(pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]))
    docs = ROOT / "docs"
    for page in docs.rglob("*.md"):
        assert str(page.relative_to(docs)) in nav, f"{page.relative_to(docs)} is not in mkdocs.yml"


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
