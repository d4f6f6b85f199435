"""The house by floors: imports run down, never up, and never in a circle.

Top to bottom: the operator's tools (``mlops``) and the local cloud (``localcloud``) →
``infra`` (what ``pulumi up`` deploys) → ``pipelines`` → ``model_code`` (what the image runs).
Every import counts, also one inside a function: it runs when that function does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# policies/ (the security policy pack) sits beside infra: the local cloud above runs it, and it
# imports nothing of the project (the Pulumi CLI runs it on its own).
FLOORS = {"mlops": 0, "localcloud": 0, "infra": 1, "policies": 1, "pipelines": 2, "model_code": 3}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, packages: list[str]) -> dict[str, set[str]]:
    """Each module of ``packages`` under ``root`` and the project modules it imports."""
    files = {module_name(p, root): p for package in packages for p in (root / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package upwards
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` mod itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            imported.update(t for t in targets if t in files and t != name)
        graph[name] = imported
    return graph


def arrows_up(graph: dict[str, set[str]], floors: dict[str, int]) -> list[str]:
    def floor(module: str) -> int:
        return floors[module.split(".")[0]]

    return sorted(
        f"{src} -> {dst}" for src, targets in graph.items() for dst in targets if floor(dst) < floor(src)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT, list(FLOORS))


def test_no_import_runs_up_a_floor(graph):
    assert arrows_up(graph, FLOORS) == []


def test_no_modules_import_each_other_in_a_circle(graph):
    assert cycles(graph) == []


def test_the_graph_covers_every_floor(graph):
    assert {module.split(".")[0] for module in graph} == set(FLOORS)
    assert {"localcloud.engine", "localcloud.state"} <= graph["localcloud.cli"]


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_an_arrow_up_a_floor_inside_a_function_is_found(tmp_path):
    write(
        tmp_path,
        {
            "top/__init__.py": "",
            "top/tool.py": "",
            "low/__init__.py": "",
            "low/job.py": "def run():\n    from top import tool\n",
        },
    )
    graph = import_graph(tmp_path, ["top", "low"])
    assert arrows_up(graph, {"top": 0, "low": 1}) == ["low.job -> top.tool"]


def test_a_circle_through_a_package_init_is_found(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from pkg.b import B\nA = 1\n",
            "pkg/b.py": "def f():\n    from pkg import A\nB = 2\n",
            "pkg/c.py": "from . import a\n",
        },
    )
    assert cycles(import_graph(tmp_path, ["pkg"])) == [["pkg", "pkg.a", "pkg.b"]]


def test_relative_imports_are_resolved(tmp_path):
    write(tmp_path, {"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/m.py": "from ..n import x\n"})
    write(tmp_path, {"pkg/n.py": "x = 1\n"})
    assert import_graph(tmp_path, ["pkg"])["pkg.sub.m"] == {"pkg.n"}
