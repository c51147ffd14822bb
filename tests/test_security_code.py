"""What the code itself must never do: unsafe deserialisation, SQL built from strings, servers on every address."""

from __future__ import annotations

import ast
from pathlib import Path

from monitor.config import Config

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for pkg in ("monitor", "trainer") for p in (ROOT / pkg).rglob("*.py"))
# Interpolations into SQL that are code constants, not data: (file, expression) -> why.
SQL_CONSTANTS = {("monitor/scheduler.py", "name"): "a key of the SERVER_KEEPALIVE constant"}
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "yaml", "joblib"}


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == name]


def test_every_torch_load_is_weights_only():
    loads = []
    for path in SOURCES:
        for call in _calls(ast.parse(path.read_text()), "load"):
            if isinstance(call.func.value, ast.Name) and call.func.value.id == "torch":
                loads.append(path)
                flags = {k.arg: k.value for k in call.keywords}
                assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, \
                    f"{path.relative_to(ROOT)}:{call.lineno}: torch.load without weights_only=True"
    assert len(loads) >= 2  # the classifier and the registry both load weights


def test_no_unsafe_deserialiser_is_imported():
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad = [n for n in names if n.split(".")[0] in UNSAFE_MODULES]
            assert not bad, f"{path.relative_to(ROOT)}:{node.lineno} imports {bad}"


def test_sql_is_never_built_from_strings_except_integers_and_constants():
    """An f-string handed to execute() or text() may only interpolate int(...) or a choice of two literals."""
    for path in SOURCES:
        for call in _calls(ast.parse(path.read_text()), "execute") + [
                n for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "text"]:
            for arg in call.args[:1]:
                if isinstance(arg, ast.BinOp) or (isinstance(arg, ast.Call) and getattr(arg.func, "attr", "") == "format"):
                    raise AssertionError(f"{path.relative_to(ROOT)}:{call.lineno}: SQL built by concatenation")
                if not isinstance(arg, ast.JoinedStr):
                    continue
                for part in arg.values:
                    if not isinstance(part, ast.FormattedValue):
                        continue
                    value = part.value
                    ok = (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "int") \
                        or (isinstance(value, ast.IfExp) and isinstance(value.body, ast.Constant)
                            and isinstance(value.orelse, ast.Constant)) \
                        or (str(path.relative_to(ROOT)), ast.unparse(value)) in SQL_CONSTANTS
                    assert ok, f"{path.relative_to(ROOT)}:{call.lineno}: SQL interpolates {ast.unparse(value)}"


def test_servers_bind_to_loopback_by_default():
    cfg = Config()
    assert cfg.monitor.metrics_addr == "127.0.0.1"
    from monitor.sim import StandIn, small_scenario

    sim = StandIn(small_scenario())
    try:
        assert sim.url.startswith("http://127.0.0.1:")
    finally:
        sim.close()
    for path in SOURCES:
        assert "0.0.0.0" not in path.read_text(), f"{path.relative_to(ROOT)} names 0.0.0.0"
