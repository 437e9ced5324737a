"""A griffe extension for ``make docs``: the docstrings' Sphinx roles
(:class:`~elbokit.nn.config.TrainingConfig`, :meth:`encode`, :mod:`elbokit.kinds`)
become mkdocstrings cross-references, so that the strict build checks each of them
(a role whose target is not in the reference fails the build).

A target is looked up as Python would see it from the docstring's object: absolute
(``elbokit.x.y``), relative (``.fit_vae.bare_options``), or a name in scope (a member
of the object, of its class, or of its module, imports followed to what they name;
inherited members included), or the one member of that name of a class of the
module. A name that a package exports lazily (``elbokit.nn.VAE``, through
``__getattr__``) is found in the package's modules. A private target (a ``_name`` on
its path, not in the reference) that exists becomes plain code. What is not found
stays as written, for autorefs to report: the strict build fails.

It also reads the entries that many of elbokit's docstrings write as
``name : what it is.`` (numpydoc's place of the type holding the description) as
``name`` with that description, so they render as descriptions, not as types.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)(?:\(\))?`")


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                text = ROLE.sub(lambda m: _crossref(obj, m), obj.docstring.value)
                obj.docstring.value = _descriptions_as_such(text)


SECTIONS = {"parameters", "other parameters", "attributes", "returns", "yields", "raises"}
ENTRY = re.compile(r"^([\w*][\w, *]*) : (.+)$")  # name : type-or-description, unindented


def _descriptions_as_such(text: str) -> str:
    """In the numpydoc sections, ``name : text`` whose text is a description (over
    six words, or a sentence, or marked up) as ``name`` followed by that text."""
    lines, out, section = text.splitlines(), [], None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            section = line.strip().lower()
        entry = ENTRY.match(line) if section in SECTIONS else None
        if entry and _is_description(entry.group(2)):
            out += [entry.group(1), "    " + entry.group(2)]
        else:
            out.append(line)
    return "\n".join(out)


def _is_description(text: str) -> bool:
    return len(text.split()) > 6 or text.rstrip().endswith(".") or "`" in text


def _walk(obj):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def _crossref(obj, match) -> str:
    short, target = match.group(1) == "~", match.group(2)
    path = _resolve(obj, target)
    text = (path or target).rsplit(".", 1)[-1] if short else target
    if path is not None and _private(path):
        return f"`{text}`"
    return f"[`{text}`][{path or target}]"


def _private(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


def _lookup(root, path: str):
    """The object at ``path`` (dotted, absolute) under the package ``root``, or None."""
    parts = path.split(".")
    if parts[0] != root.name:
        return None
    obj = root
    for part in parts[1:]:
        members = obj.all_members if obj.is_class else obj.members  # inherited too
        if part not in members:
            return None
        obj = members[part]
        obj = _final(obj)
        if obj is None:
            return None
    return obj


def _final(obj):
    """An alias (an import) followed to what it names, None if that is outside."""
    try:
        return obj.final_target if obj.is_alias else obj
    except griffe.AliasResolutionError:
        return None


def _resolve(obj, target: str) -> str | None:
    root = obj.package
    if target.startswith("."):  # relative to the module's package (a package's own
        module = obj.module       # __init__ first: there ".x" is the package's x)
        bases = ([module] if module.is_init_module else []) + [module.parent or module]
        found = next(filter(None, (_lookup(root, f"{base.path}{target}") for base in bases)),
                     None)
    elif target.split(".")[0] == root.name:
        found = _lookup(root, target) or _lazy_export(root, target)
    else:
        found = None
        scope = obj
        while found is None and scope is not None:  # the object, its class, its module ...
            found = _lookup(root, f"{scope.path}.{target}")
            scope = scope.parent
        if found is None:  # a name of the module where a base class is defined
            found = next(filter(None, (_lookup(root, f"{base.module.path}.{target}")
                                       for base in _bases(obj))), None)
        if found is None and "." not in target:
            found = _class_member(obj.module, target)
    return None if found is None else found.path


def _bases(obj):
    """The base classes (all levels) of ``obj``, or of the class it is a member of."""
    cls = obj if obj.is_class else obj.parent if obj.parent is not None and \
        obj.parent.is_class else None
    return [] if cls is None else list(cls.mro())


def _class_member(module, name: str):
    """The member ``name`` of the one class of ``module`` that has one, else None."""
    found = [c.all_members[name] for c in module.classes.values() if name in c.all_members]
    return _final(found[0]) if len(found) == 1 else None


def _lazy_export(root, target: str):
    """``package.Name`` exported by ``__getattr__``: the one module of the package
    that defines ``Name``."""
    package_path, _, name = target.rpartition(".")
    package = _lookup(root, package_path)
    if package is None or not package.is_module:
        return None
    found = [m.members[name] for m in package.modules.values()
             if name in m.members and not m.members[name].is_alias]
    return found[0] if len(found) == 1 else None
