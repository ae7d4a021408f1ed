"""Every ``kernsim ...`` command shown in a code block of README.md or docs/*.md runs, and
exits with the status the documentation gives it.

A command states its exit status on its own line (``# exit 1``), or, where the text around
it says it, in ``PROSE_EXIT`` below.  Usage synopses (``[--json]``, ``NAME``, ``A|B``) are
not commands.  A command that needs something this test does not start (a Prometheus
server, or one that runs until Ctrl-C) is listed in ``ELSEWHERE`` with the test that runs
it.  A command that takes minutes runs at a smaller size (``SMALLER``).  A new documented
command fails this test until it is run here or listed: nothing is skipped silently.

Slow: about two minutes (the README's main job, the kamezawa simulation, a v5 search).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Commands whose exit status the text around them states (README: "The main job ...
#: exits with status 1").
PROSE_EXIT: dict[str, int] = {}
#: Commands run by the tests that own what they need, with the reason.
ELSEWHERE = {
    "kernsim plot --prometheus http://127.0.0.1:9090 --since 10m --out headline.png": (
        "needs a Prometheus scraping a cluster: tests/deploy/test_live.py draws it from one"
    ),
    "kernsim run --scenario kamezawa --variant none --variant upstream --faults cluster-hdd "
    "--duration 9 --until-leak 54": (
        "the README's main job, exit 1 as its prose says: tests/cluster/test_main_job.py runs "
        "it KERNSIM_MAIN_JOB_RUNS times and checks each verdict"
    ),
    "kernsim faults set hdd": (
        "needs the compose main stack's admin ports: the same command with --admin runs "
        "against kernsim up in tests/cluster/test_acceptance_and_faults.py"
    ),
    "kernsim faults show --stack compare": (
        "needs the compose compare stack: tests/cluster/test_acceptance_and_faults.py runs "
        "show with --admin against kernsim up"
    ),
    "kernsim faults reset --admin URL,URL,...": (
        "URL is the list kernsim up prints: tests/cluster/test_acceptance_and_faults.py runs it"
    ),
    "kernsim run --services mm=HOST:PORT,memcg=HOST:PORT,... --variant none --duration 15": (
        "needs six services on other hosts: tests/cluster/test_multihost.py runs it across "
        "three network namespaces"
    ),
    'kernsim run --services "$KERNSIM_PEERS" --variant none --duration 15 --json': (
        "the same, from a variable: tests/cluster/test_multihost.py"
    ),
}
#: Long commands run smaller here: (documented text, replacement, reason).
SMALLER = [
    ("--schedules 200 --kamezawa-seeds 2", "--schedules 20 --kamezawa-seeds 0",
     "the full matrix takes two minutes; the catalogue rows alone exit 1 as documented"),
]  # fmt: skip

_EXIT = re.compile(r"#\s*exit\s+(\d+)")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_-]*$|[\[\]|]")
_OUT = re.compile(r" --out \S+")


def _blocks(text: str) -> list[str]:
    """The lines of fenced and indented code blocks, continuations joined."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            if out and out[-1].endswith("\\"):
                out[-1] = out[-1][:-1].rstrip() + " " + line.strip()
            else:
                out.append(line.strip())
    return out


def documented() -> list[tuple[str, str, str]]:
    """(file, command, the rest of its line) for every kernsim command in a code block."""
    found: list[tuple[str, str, str]] = []
    for path in DOCS:
        for line in _blocks(path.read_text(encoding="utf-8")):
            line = line.removeprefix("$ ")
            m = re.search(r"(?:^|&& )(?:\.venv/bin/)?(kernsim (?:[a-z]+)\b.*)$", line)
            if not m:
                continue
            cmd, _, comment = m.group(1).partition("#")
            found.append((path.name, " ".join(cmd.split()), comment))
    return found


def is_synopsis(cmd: str) -> bool:
    """A usage line: a placeholder word (``NAME``, ``FILE``), ``[optional]`` or ``a|b``."""
    return any(_PLACEHOLDER.search(tok) for tok in cmd.split()[1:])


def expected_exit(cmd: str, comment: str) -> int | None:
    m = _EXIT.search("#" + comment)
    if m:
        return int(m.group(1))
    return PROSE_EXIT.get(cmd)


def runnable() -> list[tuple[str, str, int | None]]:
    """Each command once: the same command with and without ``--out DIR`` runs once, with
    it (what it prints does not depend on --out; a replay may read what it writes)."""
    seen: dict[str, tuple[str, str, int | None]] = {}
    for name, cmd, comment in documented():
        if is_synopsis(cmd) or cmd in ELSEWHERE:
            continue
        status = expected_exit(cmd, comment)
        key = _OUT.sub("", cmd)
        if key in seen:
            _, before, was = seen[key]
            assert was is None or status is None or was == status, f"{cmd}: two exit statuses"
            if "--out" in before or status is None:
                continue
        seen[key] = (name, cmd, status)
    return list(seen.values())


def test_documentation_shows_commands() -> None:
    cmds = [c for _, c, _ in documented()]
    assert any(c.startswith("kernsim sim ") for c in cmds)
    assert any(c.startswith("kernsim explore ") for c in cmds)
    assert any(is_synopsis(c) for c in cmds) and not is_synopsis("kernsim replay a.json")


def test_every_command_states_its_exit_status() -> None:
    missing = [f"{name}: {cmd}" for name, cmd, status in runnable() if status is None]
    assert not missing, "documented without an exit status (add '# exit N'):\n" + "\n".join(missing)


def test_commands_run_elsewhere_are_still_documented() -> None:
    cmds = {c for _, c, _ in documented()}
    assert set(ELSEWHERE) <= cmds, "ELSEWHERE names a command the docs no longer show"


def _order(item: tuple[str, str, int | None]) -> int:
    # explore writes the replay files that `kernsim replay out/...` reads.
    return 0 if item[1].startswith("kernsim explore") else 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder with the repository's docs/ (replay files) and deploy/ reachable
    by the relative paths the documentation uses."""
    d = tmp_path_factory.mktemp("docs-commands")
    for name in ("docs", "deploy"):
        (d / name).symlink_to(ROOT / name)
    return d


@pytest.mark.parametrize(
    "item", sorted(runnable(), key=_order), ids=lambda item: f"{item[0]}: {item[1][:60]}"
)
def test_documented_command_exits_as_documented(
    item: tuple[str, str, int | None], workdir: Path
) -> None:
    _name, cmd, status = item
    assert status is not None
    for text, smaller, _why in SMALLER:
        cmd = cmd.replace(text, smaller)
    argv = [sys.executable, "-m", "kernsim", *shlex.split(cmd)[1:]]
    env = {**os.environ, "KERNSIM_PROGRESS": "0"}
    proc = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=600,
                          env=env)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == status, (
        f"{cmd}: exit {proc.returncode}, documented {status}\n{proc.stdout[-1500:]}\n"
        f"{proc.stderr[-1500:]}"
    )
