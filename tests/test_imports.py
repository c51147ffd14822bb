"""The import arrows: no cycle among monitor's modules, each imports alone, and monitor never imports trainer.

Imports are read from the source (lazy ones inside functions too). Under
`if TYPE_CHECKING:` they run for type checkers only: the service's modules
(monitor outside monitor.sim) may not use that to hide a cycle either; the
stand-in under monitor/sim/ is held to its runtime imports.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MONITOR = ROOT / "monitor"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(MONITOR.rglob("*.py"))}


def statements(tree: ast.AST, *, typing_only: bool) -> list[ast.AST]:
    """Return every node of the tree, at any depth; `typing_only` False skips `if TYPE_CHECKING:` bodies."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if not typing_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def imported(name: str, path: Path, *, typing_only: bool = True) -> set[str]:
    """Return every module an import statement of the file names, at any depth (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in statements(ast.parse(path.read_text(encoding="utf-8")), typing_only=typing_only):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from monitor.store import migrate` imports the module monitor.store.migrate; a name
            # that is no module (`from monitor.store import Store`) comes from the package itself.
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(base)
    return found


def graph(*, typing_only: bool = True) -> dict[str, set[str]]:
    """Return module -> the monitor modules it imports."""
    return {name: {m for m in imported(name, path, typing_only=typing_only) if m in MODULES and m != name}
            for name, path in MODULES.items()}


def service(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Return the graph of monitor's modules outside the stand-in (monitor.sim)."""
    def kept(name: str) -> bool:
        return name != "monitor.sim" and not name.startswith("monitor.sim.")

    return {name: {m for m in out if kept(m)} for name, out in edges.items() if kept(name)}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle as [a, b, ..., a], or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(edges[node]):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    # Guards the test below: it would also pass if find_cycle never found one.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_monitor_modules():
    assert find_cycle(graph(typing_only=False)) is None


def test_no_import_cycle_among_the_service_modules_even_for_type_checkers():
    assert find_cycle(service(graph(typing_only=True))) is None


def test_the_arrows_run_daemon_cycle_check_stages():
    edges = graph()
    assert "monitor.cycle" not in edges["monitor.check"]
    assert "monitor.check" in edges["monitor.cycle"] and "monitor.cycle" in edges["monitor.daemon"]


def test_monitor_never_names_trainer():
    offenders = {name: sorted(m for m in imported(name, path) if m == "trainer" or m.startswith("trainer."))
                 for name, path in MODULES.items()}
    assert {name: found for name, found in offenders.items() if found} == {}


IMPORT_EACH_ALONE = """
import importlib, json, sys
results = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "monitor" or m.startswith(("monitor.", "trainer"))]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
        continue
    pulled = sorted(m for m in sys.modules if m == "trainer" or m.startswith("trainer."))
    if pulled:
        results[name] = "imported " + ", ".join(pulled)
print(json.dumps(results))
"""


def test_each_monitor_module_imports_alone_without_trainer():
    # One fresh interpreter; monitor's modules are dropped before each import, torch and the rest stay loaded.
    names = [name for name in MODULES if not name.endswith("__main__")]
    done = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, json.dumps(names)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}
