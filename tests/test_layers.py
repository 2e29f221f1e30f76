"""The house keeps its plan (issue 13): no import cycles in `monitor/`, and the core never imports upward.

Every import counts, also one inside a function (a lazy import is still a dependency: it only hides
the cycle until the function runs); imports under `if TYPE_CHECKING:` do not, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "monitor"

#: The core: reading files, weekly series, detectors, levels, the value types. It never reads the
#: config, the store, the weekly line, alerts or reports: they are built on it.
CORE = ("monitor.sources", "monitor.series", "monitor.weeks", "monitor.detectors", "monitor.severity", "monitor.types",
        "monitor.errors", "monitor.numbers", "monitor.nowcast", "monitor.formats")  # fmt: skip
UPPER = ("monitor.config", "monitor.store", "monitor.pipeline", "monitor.alerts", "monitor.report", "monitor.cli",
         "monitor.schedule", "monitor.ingest", "monitor.assemble", "monitor.detection", "monitor.backtest",
         "monitor.demo", "monitor.status", "monitor.coverage", "monitor.delays", "monitor.asknown", "monitor.fetch",
         "monitor.compare", "monitor.emerging")  # fmt: skip

#: Cycles still to be broken, each with why it is still there. The test fails when one is broken (remove it
#: here) as well as when a new one appears.
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The monitor modules `name` imports (a name imported from a package counts as its submodule when it is one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            skipped.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # monitor.x.y.attr -> monitor.x.y
                target = target.rpartition(".")[0]
            if target and target != name and target != "monitor":
                out.add(target)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """Each monitor module's imports: read when a test here asks (a second of parsing), not when pytest collects."""
    return {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read_whole(graph):
    # the reader sees the modules and their imports, lazy ones included: a check on itself
    assert {"monitor.pipeline", "monitor.cli", "monitor.detectors.farrington", "monitor.sources.counts"} <= set(graph)
    assert "monitor.detection" in graph["monitor.pipeline"] and "monitor.ingest" in graph["monitor.pipeline"]
    assert "monitor.store" in graph["monitor.cli"]  # imported inside a function there
    assert "monitor.detectors.farrington_batch" in graph["monitor.detectors.farrington"]  # the engine behind detect
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_no_import_cycles_in_monitor(graph):
    cycles = set(_cycles(graph))
    assert cycles - KNOWN_CYCLES == set(), f"new import cycles: {[sorted(c) for c in cycles - KNOWN_CYCLES]}"
    assert KNOWN_CYCLES - cycles == set(), f"broken, remove from KNOWN_CYCLES: {[sorted(c) for c in KNOWN_CYCLES - cycles]}"


def test_the_core_never_imports_upward(graph):
    upward = {
        name: sorted(d for d in deps if d.startswith(UPPER))
        for name, deps in graph.items()
        if name.startswith(CORE) and any(d.startswith(UPPER) for d in deps)
    }
    assert upward == {}, f"core modules importing config, store, the weekly line, alerts or reports: {upward}"


def test_every_module_is_placed_in_a_layer():
    """A new module is put in the core or above it on purpose: the rules above only check what is listed."""
    shared = ("monitor.faults", "monitor.parallel", "monitor.cluster", "monitor.atomic", "monitor.lock", "monitor.cron", "monitor.measured",
              "monitor.surges", "monitor.evaluate", "monitor.__main__")  # fmt: skip
    unplaced = [m for m in MODULES if m != "monitor" and not m.startswith(CORE + UPPER + shared)]
    assert unplaced == []
