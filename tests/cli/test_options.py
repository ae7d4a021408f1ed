"""The command line's shape: every flag shared by commands defined once, each option's
default in its help, one table of exit statuses, and bad values refused in one line."""

from __future__ import annotations

import argparse
import ast
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kernsim.cli import build_parser
from kernsim.exits import Exit, killed_by

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "kernsim" / "cli"
#: Flags more than one command takes: each is added by its options.add_* function only.
SHARED = ("--scenario", "--variant", "--seed", "--faults", "--page-cluster", "--jobs",
          "--duration", "--out", "--json", "--verbose", "--strict")  # fmt: skip


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _options() -> list[tuple[str, argparse.ArgumentParser, argparse.Action]]:
    return [
        (name, p, action)
        for name, p in _subcommands().items()
        for action in p._actions
        if action.option_strings and action.default is not argparse.SUPPRESS
    ]


def test_every_option_of_every_command_says_its_default_in_its_help() -> None:
    options = _options()
    assert len(options) > 50
    missing = []
    for name, p, action in options:
        text = p._get_formatter()._expand_help(action)
        if "(default: " not in text or "default: None" in text:
            missing.append(f"kernsim {name} {action.option_strings[-1]}: {text!r}")
    assert not missing, "\n".join(missing)


def test_every_command_is_listed() -> None:
    assert set(_subcommands()) == {
        "sim", "run", "up", "explore", "replay", "matrix", "plot", "faults"
    }  # fmt: skip


def _flags_added(path: Path) -> list[str]:
    """The option strings of every ``add_argument`` call in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_argument"
        ):
            found += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return [str(f) for f in found]


def test_shared_flags_are_defined_in_options_py_only() -> None:
    elsewhere = {
        path.name: [f for f in _flags_added(path) if f in SHARED]
        for path in CLI.glob("*.py")
        if path.name != "options.py"
    }
    assert not any(elsewhere.values()), elsewhere
    assert set(SHARED) <= set(_flags_added(CLI / "options.py"))


def test_only_the_command_line_imports_it() -> None:
    """The commands import the layers below them, never the other way round."""
    found = []
    for folder in ("kernsim", "services", "protocol"):
        for path in (ROOT / folder).rglob("*.py"):
            if CLI in path.parents or path.name == "__main__.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if any(n == "kernsim.cli" or n.startswith("kernsim.cli.") for n in names):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


def test_the_exit_statuses_are_the_documented_ones() -> None:
    assert {e.name: int(e) for e in Exit} == {
        "OK": 0, "VIOLATED": 1, "USAGE": 2, "SERVICE": 3, "SETUP": 4, "BROKEN_PIPE": 141,
    }  # fmt: skip
    assert killed_by(signal.SIGTERM) == 143 and killed_by(signal.SIGINT) == 130


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "--page-cluster", "9"], "argument --page-cluster: page-cluster must be between"),
        (["explore", "--seed", "-1"], "argument --seed: a seed is a whole number >= 0: '-1'"),
        (["up", "--faults", "gauss"], "argument --faults: unknown fault profile 'gauss'"),
        (["run", "--duration", "0"], "argument --duration: must be a positive number"),
        (["explore", "--window-us", "-5"], "argument --window-us: must be >= 0"),
        (["matrix", "--schedules", "-1"], "argument --schedules: must be a whole number >= 0"),
    ],
)
def test_a_bad_value_is_exit_2_and_one_line_before_anything_starts(
    argv: list[str], says: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kernsim", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == Exit.USAGE
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"kernsim {argv[0]}: error: ")
