"""The objectives package (nn/objectives/) and the loop (nn/train/): their modules
import one way (no module imports one that imports it back), each imports alone, and
the one registry resolves every objective name the training config and the CLI
accept."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from elbokit import nn  # noqa: E402
from elbokit.nn.config import OBJECTIVES, ArchitectureConfig, TrainingConfig  # noqa: E402
from elbokit.nn.objectives import ESTIMATORS, ELBOEstimator, get_estimator  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "elbokit.nn.objectives"
MODULES = sorted(p.stem for p in (SRC / "elbokit" / "nn" / "objectives").glob("*.py")
                 if p.stem != "__init__")
TRAIN = "elbokit.nn.train"  # the loop's package: it imports the objectives, never back
TRAIN_MODULES = sorted(p.stem for p in (SRC / "elbokit" / "nn" / "train").glob("*.py")
                       if p.stem != "__init__")


def _file(module: str) -> Path | None:
    path = SRC.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(module: str) -> set[str]:
    """The elbokit modules that ``module`` imports anywhere in its file (a function's
    import too: a deferred import still closes a circle), resolved to files."""
    path = _file(module)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:  # relative: the package, its parent, ... then the module
                base = ".".join(filter(None, [package.rsplit(".", node.level - 1)[0],
                                              node.module]))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.startswith("elbokit") and _file(name)}
    return found - {module}


def _reachable(module: str) -> set[str]:
    seen, todo = set(), list(_imports(module))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _imports(name)
    return seen


@pytest.mark.parametrize("name", MODULES)
def test_no_module_of_the_package_imports_one_that_imports_it_back(name):
    module = f"{PACKAGE}.{name}"
    assert module not in _reachable(module)
    assert PACKAGE not in _reachable(module)  # nor the package's __init__


@pytest.mark.parametrize("name", TRAIN_MODULES)
def test_no_module_of_the_training_loop_imports_one_that_imports_it_back(name):
    """The objectives import train.precision (a leaf); the loop imports the objectives;
    the train package's ``__init__`` imports its parts only when a name is first used."""
    module = f"{TRAIN}.{name}"
    assert module not in _reachable(module)
    assert not _imports(TRAIN)


# a fresh interpreter that loads the third-party packages once, then forks one child per
# module: each child imports its module with no elbokit module loaded before it
_FORKED_IMPORTS = """
import os, sys, importlib
import numpy, scipy, scipy.linalg, scipy.special, scipy.stats, sklearn, torch
failed = []
for module in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(module)
        except BaseException as exc:
            print(f"import {module}: {type(exc).__name__}: {exc}", flush=True)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(module)
print("failed:", failed)
sys.exit(1 if failed else 0)
"""


def test_the_modules_import_alone_in_a_fresh_interpreter():
    """Each module imports on its own (no import cycle hidden by the import order): one
    interpreter loads numpy, scipy, scikit-learn and torch, then each module is imported
    in a forked child of it in which no elbokit module was loaded."""
    modules = [*(f"{PACKAGE}.{name}" for name in MODULES),
               *(f"{TRAIN}.{name}" for name in TRAIN_MODULES)]
    assert "elbokit" not in _FORKED_IMPORTS.split("for module")[0]
    done = subprocess.run([sys.executable, "-c", _FORKED_IMPORTS, *modules],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "failed: []" in done.stdout


def test_every_objective_name_of_the_config_resolves_to_its_registered_class():
    assert set(ESTIMATORS) == set(OBJECTIVES) - {"custom"}
    torch.manual_seed(0)
    model = nn.VAENetwork(ArchitectureConfig(n_features=6, latent_dim=2, hidden=(8,)))
    x = torch.bernoulli(torch.full((4, 6), 0.4), generator=torch.Generator().manual_seed(1))
    for name, cls in ESTIMATORS.items():
        assert issubclass(cls, ELBOEstimator) and cls.name == name
        assert getattr(nn, cls.__name__) is cls  # exported by elbokit.nn
        for estimator in (get_estimator(name), get_estimator(name, TrainingConfig(objective=name))):
            assert type(estimator) is cls
            with torch.no_grad():
                value = estimator(model, x, 2, torch.Generator().manual_seed(0))
            assert value.shape == (4,) and torch.isfinite(value).all(), name
    instance = ESTIMATORS["b"]()
    assert get_estimator(instance) is instance  # an estimator object passes through


def test_an_unknown_objective_name_is_refused_with_the_registered_ones():
    from elbokit.exceptions import ParameterError

    with pytest.raises(ParameterError, match="'a', 'b', 'ciwae', 'iwae', 'miwae', 'piwae'"):
        get_estimator("elbo")
