"""The tests' own layout (tests/README.md): every folder a package, helpers imported one
way (absolutely, from tests.support), conftest.py files holding fixtures only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"


def _modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_test_folder_is_a_package() -> None:
    folders = {p.parent for p in _modules()}
    assert len(folders) >= 9
    missing = [str(f.relative_to(TESTS)) for f in folders if not (f / "__init__.py").exists()]
    assert not missing, missing


def _helper_imports(path: Path) -> list[str]:
    """Imports of test code that do not go through tests.support: relative imports, a
    conftest, a test module, or a helper on a bare name (``from unitkit import ...``)."""
    local = {p.stem for p in _modules()} - set(sys.stdlib_module_names)
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            if node.level:
                bad.append(f"{path.name}:{node.lineno}: relative import")
                continue
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tests" and parts[:2] != ["tests", "support"]:
                bad.append(f"{path.name}:{node.lineno}: {name} (helpers live in tests.support)")
            elif parts[0] in local - {"tests"}:
                bad.append(f"{path.name}:{node.lineno}: {name} imported on a bare name")
    return bad


def test_helpers_are_imported_from_tests_support_only() -> None:
    bad = [b for path in _modules() for b in _helper_imports(path)]
    assert not bad, "\n".join(bad)


def test_the_layout_checker_sees_each_wrong_import(tmp_path: Path) -> None:
    f = tmp_path / "t.py"
    f.write_text(
        "from .conftest import kill_all\nfrom unitkit import small_mm\n"
        "from tests import polling\nfrom tests.support.polling import eventually\n"
    )
    found = _helper_imports(f)
    assert len(found) == 3, found


def _is_fixture(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


def test_conftest_files_hold_fixtures_only() -> None:
    found = []
    for path in TESTS.rglob("conftest.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) or (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_fixture(node)
            ):
                found.append(f"{path.relative_to(TESTS)}:{node.lineno}: {node.name}")
    assert not found, found
