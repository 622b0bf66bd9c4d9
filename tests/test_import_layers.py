"""Import layering, read from the source with ``ast`` (importing would hide a cycle
that Python happens to resolve, and would only see the modules a run loads).

* ``fingerprint.sources`` (databases, the User-Agent parser) never imports
  ``fingerprint.features``; the records both sides share live in ``fingerprint.model``,
  which imports neither.
* No import cycle between fingerprint's packages and top-level modules runs through
  ``features`` or ``sources`` at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import fingerprint

PACKAGE = Path(fingerprint.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.Module, *, import_time_only: bool) -> Iterator[ast.stmt]:
    """Import statements; with ``import_time_only``, those run when the module is
    imported (not inside functions or ``if TYPE_CHECKING:``)."""
    if not import_time_only:
        yield from (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        return
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                pending.extend(handler.body)
        elif isinstance(node, ast.With):
            pending.extend(node.body)


def imported_modules(path: Path, *, import_time_only: bool = False) -> set[str]:
    """The ``fingerprint.*`` modules the file at ``path`` imports."""
    return modules_imported_by(
        path.read_text(encoding="utf-8"),
        module=_module_name(path),
        is_package=path.name == "__init__.py",
        import_time_only=import_time_only,
    )


def modules_imported_by(
    text: str, *, module: str, is_package: bool, import_time_only: bool = False
) -> set[str]:
    """The ``fingerprint.*`` modules ``text`` (the source of ``module``) imports, relative
    imports resolved; ``from pkg import name`` counts as importing ``pkg.name`` too."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(text), import_time_only=import_time_only):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        found.add(target)
        found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "fingerprint" or name.startswith("fingerprint.")}


def _unit(module: str) -> str:
    """The top-level package or module of fingerprint that ``module`` belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_walker_sees_relative_lazy_and_type_checking_imports() -> None:
    """The walker itself: a layering test that missed imports could never fail."""
    text = (
        "from typing import TYPE_CHECKING\n"
        "from ..features import records\n"
        "if TYPE_CHECKING:\n"
        "    from fingerprint.checks.base import Check\n"
        "def f():\n"
        "    import fingerprint.history\n"
    )
    module = "fingerprint.sources.maxmind"
    assert modules_imported_by(text, module=module, is_package=False) == {
        "fingerprint.features",
        "fingerprint.features.records",
        "fingerprint.checks.base",
        "fingerprint.checks.base.Check",
        "fingerprint.history",
    }
    at_import = modules_imported_by(text, module=module, is_package=False, import_time_only=True)
    assert at_import == {"fingerprint.features", "fingerprint.features.records"}
    # From a package's __init__, one dot is the package itself.
    inside = modules_imported_by(
        "from .network import classify_ip\n", module="fingerprint.features", is_package=True
    )
    assert "fingerprint.features.network" in inside


@pytest.mark.parametrize(
    "path",
    [p for p in _files() if _within(_module_name(p), "fingerprint.sources")],
    ids=lambda p: p.name,
)
def test_sources_never_import_features(path: Path) -> None:
    bad = {m for m in imported_modules(path) if _within(m, "fingerprint.features")}
    assert not bad, f"{_module_name(path)} imports {sorted(bad)}"


def test_model_imports_neither_sources_nor_features() -> None:
    seen = imported_modules(PACKAGE / "model.py")
    bad = {
        m for m in seen if _within(m, "fingerprint.features") or _within(m, "fingerprint.sources")
    }
    assert not bad


def _import_time_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _files():
        unit = _unit(_module_name(path))
        targets = {_unit(m) for m in imported_modules(path, import_time_only=True)}
        graph.setdefault(unit, set()).update(t for t in targets if t not in (unit, "fingerprint"))
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = list(graph.get(start, ()))
    while pending:
        unit = pending.pop()
        if unit not in seen:
            seen.add(unit)
            pending.extend(graph.get(unit, ()))
    return seen


@pytest.mark.parametrize("package", ["fingerprint.features", "fingerprint.sources"])
def test_no_import_cycle_through(package: str) -> None:
    graph = _import_time_graph()
    assert package in graph
    assert package not in _reachable(graph, package), f"{package} imports itself back"


def test_the_old_cycle_would_be_caught() -> None:
    """The graph with the edge the old code had (sources.maxmind imported
    features.network) makes features reach itself again."""
    graph = _import_time_graph()
    graph["fingerprint.sources"] = graph["fingerprint.sources"] | {"fingerprint.features"}
    assert "fingerprint.features" in _reachable(graph, "fingerprint.features")
