"""The wire format lives in protocol/ only; the runtime depends on protocol and faults only.

Read from the source (AST), so a new module cannot quietly re-encode frames
or spell an envelope key by hand.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kernsim.protocol import WIRE_KEYS

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = sorted((ROOT / "services" / "runtime").glob("*.py"))
OUTSIDE_PROTOCOL = sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "kernsim").rglob("*.py")])
KEYS = set(WIRE_KEYS.values())


def _imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _key_literals(tree: ast.AST) -> list[int]:
    """Lines where a one-letter wire key is a dict key, a subscript, a .get() or an `in` test."""

    def is_key(node: ast.AST | None) -> bool:
        return isinstance(node, ast.Constant) and node.value in KEYS

    lines = []
    for node in ast.walk(tree):
        hit = (
            (isinstance(node, ast.Dict) and any(is_key(k) for k in node.keys))
            or (isinstance(node, ast.Subscript) and is_key(node.slice))
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "pop")
                and node.args
                and is_key(node.args[0])
            )
            or (isinstance(node, ast.Compare) and is_key(node.left))
        )
        if hit:
            lines.append(getattr(node, "lineno", 0))
    return lines


def test_the_runtime_spells_no_wire_key() -> None:
    found = {p.name: lines for p in RUNTIME if (lines := _key_literals(ast.parse(p.read_text())))}
    assert found == {}


def test_only_protocol_imports_msgpack() -> None:
    users = [p for p in OUTSIDE_PROTOCOL if "msgpack" in _imports(ast.parse(p.read_text()))]
    assert users == []


def test_the_runtime_imports_no_service_model_or_simulation() -> None:
    allowed = ("kernsim.protocol", "kernsim.faults", "kernsim.services.runtime")
    bad = {
        f"{p.name}: {name}"
        for p in RUNTIME
        for name in _imports(ast.parse(p.read_text()))
        if name.startswith("kernsim") and not name.startswith(allowed)
    }
    assert bad == set()


def test_the_key_check_sees_a_hand_spelt_key() -> None:
    """The check above can fail: it finds each way of spelling a key by hand."""
    for source in ('w = {"s": 1}', 'x = w["r"]', 'w.get("t")', '"r" in w'):
        assert _key_literals(ast.parse(source)) == [1], source
