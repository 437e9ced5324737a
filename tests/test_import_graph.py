"""The modules of src/elbokit import one way: no circle among their module-level imports
(imports inside functions are deferred on purpose and not counted; ``from . import x``
of a submodule depends on that submodule, not on its package's ``__init__``)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for path in (SRC / "elbokit").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imported(node, name: str, is_package: bool, modules) -> set[str]:
    """The modules of elbokit one module-level import statement depends on."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:
        package = (name if is_package else name.rsplit(".", 1)[0]).split(".")
        package = package[:len(package) - node.level + 1]
        target = ".".join(package + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    submodules = {f"{target}.{a.name}" for a in node.names} & set(modules)
    if len(submodules) == len(node.names):
        return submodules
    return submodules | ({target} & set(modules))


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:
            deps |= _imported(node, name, is_package, modules)
        graph[name] = deps - {name}
    return graph


def _cycle_from(graph, start) -> list[str] | None:
    """A path start -> ... -> start, if there is one (depth-first)."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for dep in graph[node]:
            if dep == start:
                return path + [start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, path + [dep]))
    return None


def test_no_import_circle_in_src():
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    cycles = [cycle for name in sorted(graph) if (cycle := _cycle_from(graph, name))]
    assert not cycles, " -> ".join(cycles[0])


def test_the_walk_sees_a_circle():
    """The check itself: a graph with a circle is reported."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle_from(graph, "a") == ["a", "b", "c", "a"]
    assert _cycle_from(graph, "d") is None
