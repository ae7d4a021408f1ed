"""The model's layer rules, read from its source: every import at the top of its
module, nothing imported from outside ``kernsim.model`` (variants, sim, services,
protocol, explore, the CLI), and ``import kernsim.model`` alone fills the registry."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

MODEL = Path(__file__).resolve().parents[2] / "kernsim" / "model"

#: kernsim packages the model must never import, at any level (TYPE_CHECKING included).
OUTER = (
    "variants",
    "sim",
    "check",
    "services",
    "protocol",
    "explore",
    "cli",
    "faults",
    "workloads",
)
#: The model is sans-IO: no event loop, clock, randomness or wire format of its own.
SANS_IO = ("asyncio", "time", "random", "socket", "msgpack")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The absolute names an import statement in ``module`` reaches (``from kernsim
    import sim`` reaches ``kernsim.sim``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.rsplit(".", node.level)[0]
        base = f"{package}.{base}" if base else package
    return [f"{base}.{alias.name}" for alias in node.names]


def import_violations(source: str, module: str) -> list[str]:
    """Every import of ``source`` (module ``module``) that breaks a layer rule."""
    tree = ast.parse(source)
    top: dict[int, bool] = {}  # id(import node) -> under `if TYPE_CHECKING:`
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            top[id(stmt)] = False
        elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            for inner in stmt.body:
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    top[id(inner)] = True
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        where = f"{module}:{node.lineno}: {ast.unparse(node)}"
        if id(node) not in top:
            found.append(f"{where}: import not at the top of the module")
        for name in _targets(node, module):
            parts = name.split(".")
            if parts[0] == "kernsim" and (len(parts) < 2 or parts[1] != "model"):
                found.append(f"{where}: the model imports {name}")
            elif parts[0] in SANS_IO:
                found.append(f"{where}: the model is sans-IO, yet imports {name}")
            elif top.get(id(node)) and parts[:2] != ["kernsim", "model"]:
                found.append(f"{where}: TYPE_CHECKING imports only kernsim.model modules")
    return found


def test_the_checker_reports_each_kind_of_violation() -> None:
    bad = (
        "from typing import TYPE_CHECKING\n"
        "from kernsim.model import swapfile\n"
        "if TYPE_CHECKING:\n"
        "    from kernsim.variants.base import Variant\n"
        "    from collections.abc import Callable\n"
        "import asyncio\n"
        "from .. import sim\n"
        "def f():\n"
        "    from kernsim.model.swapfile import swap_free\n"
        "class C:\n"
        "    async def g(self):\n"
        "        import kernsim.cli\n"
    )
    found = import_violations(bad, "kernsim.model.x")
    assert len(found) == 7, found
    assert sum("not at the top" in f for f in found) == 2
    assert any("imports kernsim.variants.base" in f for f in found)
    assert any("imports kernsim.sim" in f for f in found)
    assert any("imports kernsim.cli" in f for f in found)
    assert any("sans-IO" in f for f in found)
    assert any("Callable" in f and "TYPE_CHECKING" in f for f in found)
    assert import_violations("from kernsim.model import swapfile\n", "kernsim.model.x") == []


def test_every_model_module_imports_at_the_top_and_only_the_model() -> None:
    files = sorted(MODEL.glob("*.py"))
    assert len(files) > 10
    found = [
        v
        for path in files
        for v in import_violations(path.read_text(), f"kernsim.model.{path.stem}")
    ]
    assert not found, "\n".join(found)


_REGISTRY = """
import importlib, json, sys
{imports}
from kernsim.model.port import CODE_PATHS, PRIMITIVES
def owned(table, fn):
    return sorted(n for n, v in table.items() if fn(v).__module__.startswith("kernsim.model."))
print(json.dumps({{
    "primitives": sorted(PRIMITIVES),
    "code_paths": sorted(CODE_PATHS),
    "model_primitives": owned(PRIMITIVES, lambda i: i.fn),
    "model_code_paths": owned(CODE_PATHS, lambda f: f),
    "modules": sorted(m for m in sys.modules if m.startswith("kernsim")),
}}))
"""


def _registry(imports: str) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _REGISTRY.format(imports=imports)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_import_kernsim_model_alone_fills_the_registry() -> None:
    alone = _registry("import kernsim.model")
    every_file = "".join(
        f"importlib.import_module('kernsim.model.{p.stem}')\n"
        for p in sorted(MODEL.glob("*.py"))
        if p.stem != "__init__"
    )
    full = _registry(f"{every_file}import kernsim.variants")
    # Every module of the model is loaded, and nothing outside it.
    assert {f"kernsim.model.{p.stem}" for p in MODEL.glob("*.py") if p.stem != "__init__"} <= set(
        alone["modules"]
    )
    outside = [m for m in alone["modules"] if m not in ("kernsim", "kernsim.model")]
    outside = [m for m in outside if not m.startswith("kernsim.model.")]
    assert not outside, f"import kernsim.model loaded {outside}"
    # The model's own primitives and code paths are all there, and only those.
    assert full["model_primitives"] and full["model_code_paths"]
    assert alone["primitives"] == full["model_primitives"]
    assert alone["code_paths"] == full["model_code_paths"]
    # The variants add their own on top.
    assert set(full["primitives"]) > set(alone["primitives"])
