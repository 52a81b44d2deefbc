"""The package layout holds: no import cycle in supactl/, the library never imports the CLI, and
the top level keeps only what every group shares."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "supactl"
GROUPS = {"cloud", "database", "dev_stack", "simulator", "selfhost", "commands"}
SHARED = {"__init__", "__main__", "cli", "config", "errors", "redact", "project_files", "twilio_signature",
          "svg_plot"}  # the charts of bench/ reports and of `calls show/stats --plot`


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Every supactl module → the supactl modules it imports, at module level or inside a function
    (a lazy import still makes a cycle a reader has to untangle)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from supactl.simulator import audio` imports the module audio, not just the package.
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                           else node.module for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_reports_a_cycle_it_is_given():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_supactl_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_library_never_imports_the_cli():
    graph = import_graph()
    offenders = {name: sorted(t for t in targets if t.startswith(("supactl.commands", "supactl.cli")))
                 for name, targets in graph.items()
                 if not name.startswith(("supactl.commands", "supactl.cli", "supactl.__main__"))}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("checker, checked", [("supactl.cloud.doctor", "supactl.cloud.up")])
def test_doctor_does_not_depend_on_up(checker, checked):
    assert checked not in import_graph()[checker]


def test_top_level_holds_only_the_groups_and_what_they_share():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert top <= SHARED, f"modules to move into a group: {sorted(top - SHARED)}"
    assert packages == GROUPS
