"""The ``kernsim`` command line: every subcommand, one parser, one table of exit statuses.

=========================  ===============================================
``kernsim/cli/sim.py``      ``sim``: the deterministic simulation
``kernsim/cli/explore.py``  ``explore``, ``replay``, ``matrix``
``kernsim/cli/cluster.py``  ``run``, ``up``: the six services on this machine
``kernsim/cli/plot.py``     ``plot``: the dashboard's headline from Prometheus
``kernsim/cli/faults.py``   ``faults``: one fault profile for a whole cluster
``kernsim/cli/options.py``  the shared flags, each defined once with its validator
``kernsim/cli/parser.py``   argparse with one-line errors and defaults in every help
=========================  ===============================================

Each command module has ``register(subparsers)``, which adds its parsers and sets
``handler`` (args -> exit status) on each; the statuses are ``kernsim.exits.Exit``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

from kernsim import version
from kernsim.cli import cluster, explore, faults, plot, sim
from kernsim.cli.parser import Parser, UsageError
from kernsim.exits import Exit

__all__ = ["UsageError", "build_parser", "main"]

#: In the order ``kernsim --help`` lists them.
COMMANDS = (sim, cluster, explore, plot, faults)


def build_parser() -> Parser:
    parser = Parser(
        prog="kernsim",
        description="A laboratory for Linux kernel races: the memcg stale swap cache leak "
        "of 2.6.30.",
    )
    parser.add_argument("--version", action="version", version=f"kernsim {version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``kernsim`` command; its exit status, returned (never raised), so that a
    test calling ``main`` sees a usage error as 2 whether argparse or the command found it."""
    parser = build_parser()
    given = sys.argv[1:] if argv is None else list(argv)
    if not given:  # a bare `kernsim`: the list of commands, not an error about one
        parser.print_help(sys.stderr)
        return Exit.USAGE
    try:
        args = parser.parse_args(given)
    except SystemExit as exc:  # a usage error (2), or --help / --version (0)
        return exc.code if isinstance(exc.code, int) else Exit.OK
    # The exact command, for reports that say what made them.
    args.command_line = shlex.join(["kernsim", *given])
    try:
        return int(args.handler(args))
    except UsageError as exc:
        # As argparse words a bad flag of this command, so both read the same.
        cmd = f"kernsim {args.command}"
        print(f"{cmd}: error: {exc} (see {cmd} --help)", file=sys.stderr)
        return Exit.USAGE
    except BrokenPipeError:
        # The reader went away (`kernsim replay F | head`): stop quietly with the status a
        # shell gives a process SIGPIPE ended, as cat does, instead of a traceback.  Point
        # stdout at /dev/null so that the interpreter's flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return Exit.BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
