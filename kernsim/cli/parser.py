"""argparse as every ``kernsim`` command uses it: one-line errors, defaults in every help."""

from __future__ import annotations

import argparse
from typing import NoReturn

from kernsim.exits import Exit


class UsageError(Exception):
    """Bad arguments or input: printed as one line, exit status 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default: an on/off flag says ``(default: off)``,
    any other option without one in its text gets ``(default: VALUE)``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, with a bad argument said in one line (and where to read more)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(Exit.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
