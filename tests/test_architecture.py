"""The house: every module imports only from the layers before it (the data's own order), no
module of b12kg imports another inside a function (the way a cycle is hidden), and every
docstring example of the package runs."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

import b12kg

PKG = Path(b12kg.__file__).parent

# The layers, in the order the data flows (README, "How it is built"). A module belongs to the
# first entry its dotted name starts with; it may import from its own layer and those before it.
LAYERS = (
    ("b12kg._version", "b12kg.errors", "b12kg.paths", "b12kg.units"),
    ("b12kg.rdf.terms",),
    ("b12kg.cache",),
    ("b12kg.kb",),
    ("b12kg.inputs",),
    ("b12kg.rdf",),
    ("b12kg.rules",),
    ("b12kg.engines",),
    ("b12kg.explain",),
    ("b12kg.cohort", "b12kg.spark"),
    ("b12kg.api",),
    ("b12kg.testing",),
    ("b12kg.cli", "b12kg.build", "b12kg.__main__"),
)
# Thin re-exports under the names the docs and the Makefile use: they sit on top of what they name.
FACADES = {"b12kg": len(LAYERS), "b12kg.cohort.remote": len(LAYERS), "b12kg.build": len(LAYERS)}
# The one dispatch imports an engine when it is first asked for (pyshacl and owlready2 are costly).
LAZY_ALLOWED: set = set()


def _modules() -> list[tuple[str, Path]]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), p))
    return out


def _layer(module: str) -> int:
    if module in FACADES:
        return FACADES[module]
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > best[1]):
                best = (i, len(n))
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: add it where the data puts it")
    return best[0]


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "b12kg"]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "b12kg":
            return []
    else:
        here = module.split(".") if is_pkg else module.split(".")[:-1]
        up = here[: len(here) - (node.level - 1)]
        base = ".".join(up + ([node.module] if node.module else []))
    out = []
    for a in node.names:           # "from . import units" names a module; "from .x import y" names x
        candidate = f"{base}.{a.name}"
        out.append(candidate if (PKG.parent / (candidate.replace(".", "/") + ".py")).exists()
                   or (PKG.parent / candidate.replace(".", "/")).is_dir() else base)
    return out


def _imports(module: str, path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    funcs = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for n in ast.walk(fn):
                funcs[id(n)] = fn.name
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _resolve(module, is_pkg, node):
                yield node.lineno, target, funcs.get(id(node))


def test_every_import_goes_down_the_layers():
    problems = []
    for module, path in _modules():
        mine = _layer(module)
        for line, target, func in _imports(module, path):
            if target == module or target.startswith(module + "."):
                continue
            if _layer(target) > mine:
                problems.append(f"{path.relative_to(PKG.parent)}:{line}: {module} (layer {mine}) imports {target} "
                                f"(layer {_layer(target)}), which comes later in the data's flow")
    assert not problems, "\n".join(problems)


def test_no_import_of_b12kg_inside_a_function():
    problems = []
    for module, path in _modules():
        for line, target, func in _imports(module, path):
            if func is not None and (module, func) not in LAZY_ALLOWED:
                problems.append(f"{path.relative_to(PKG.parent)}:{line}: {func}() imports {target}")
    assert not problems, "\n".join(problems)


def test_the_layer_test_sees_an_upward_import(tmp_path):
    """The walker itself: a module of the inputs layer importing the API is caught."""
    src = "from ..api import assess\n"
    node = ast.parse(src).body[0]
    [target] = _resolve("b12kg.inputs.case", False, node)
    assert target == "b12kg.api" and _layer(target) > _layer("b12kg.inputs.case")


def test_every_module_is_in_a_layer_and_imports():
    for module, _ in _modules():
        _layer(module)
        if module.endswith("__main__"):
            continue
        importlib.import_module(module)


def _doctest_modules() -> list[str]:
    out = []
    for module, path in _modules():
        if module.endswith("__main__"):
            continue
        if ">>>" in path.read_text(encoding="utf-8"):
            out.append(module)
    return out


@pytest.mark.parametrize("module", _doctest_modules())
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{module} shows >>> but doctest found no example"
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed (run with -s to see them)"
