"""The package's shape: data flows one way (no import cycle, lazy imports included), every module
stays small enough to read in one sitting, and the public surface is what users catch."""

from __future__ import annotations

import ast
from pathlib import Path

import trl_reporter

PACKAGE = Path(trl_reporter.__file__).parent
MAX_LINES = 330


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, at the top or inside functions."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    targets.add(node.module.split(".")[0])
                else:
                    targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trl_reporter."):
                targets.add(node.module.split(".")[1])  # type: ignore[union-attr]
        graph[path.stem] = {t for t in targets if t in modules and t != path.stem}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert cycles(graph) == []
    # The flow's direction, spelled out: nothing below the callback reaches back up.
    assert "callback" not in set().union(*(targets for module, targets in graph.items() if module != "__init__"))
    assert not graph["records"] - {"errors", "origins", "values"}  # pure data, as records
    assert not graph["origins"]
    assert not graph["values"]
    assert not {"store", "lifecycle", "capture", "callback", "maintenance"} & graph["view"]


def test_every_module_is_small_enough_to_read_in_one_sitting() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_users_catch_one_base_error_and_its_subclasses() -> None:
    from trl_reporter import EvaluationError, StoreError, TemplateError, TrlReporterError

    assert all(issubclass(e, TrlReporterError) for e in (EvaluationError, StoreError, TemplateError))
    assert {"ReportCallback", "TrlReporterError", "add_evaluation"} <= set(trl_reporter.__all__)


if __name__ == "__main__":  # python tests/test_layout.py prints the graph and the sizes
    for module, targets in sorted(import_graph().items()):
        lines = len((PACKAGE / f"{module}.py").read_text(encoding="utf-8").splitlines())
        print(f"{module:14} {lines:4}  -> {', '.join(sorted(targets)) or '-'}")
