"""Subcommands that plugins add to ``mm`` (``mm fill``, ``mm impute``).

A command is the place where a modality's own batch keys and file formats
meet the command line, so it belongs to the plugin, not to the core CLI.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mmcore.errors import PluginError

NAME = re.compile(r"[a-z][a-z0-9-]*")


@dataclass(frozen=True, eq=False)
class Command:
    """One ``mm NAME ...`` subcommand.

    ``configure(parser)`` adds the arguments to the subcommand's argparse
    parser; ``run(args)`` does the work with the parsed namespace. Raise
    `mmcore.MMCoreError` for the user's mistakes: ``mm`` prints it as one line.
    ``examples``: whole command lines (``"mm fill MODEL 'a [MASK] b'"``) shown
    under ``mm NAME --help``; without them the help shows ``usage`` as the example.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Any]
    usage: str | None = None
    examples: tuple[str, ...] = ()


def check_command(command: object) -> str:
    """The command's name, after checking it can be added to ``mm``.

    ``configure`` is tried on a scratch parser here, at registration, so a
    broken command marks its plugin broken instead of breaking every ``mm``
    invocation later.
    """
    if not isinstance(command, Command):
        raise PluginError(f"register_commands takes mmcore.Command objects, got {type(command).__name__}")
    if not isinstance(command.name, str) or not NAME.fullmatch(command.name):
        raise PluginError(f"command name {command.name!r} is not valid; accepted: lowercase letters, digits, '-'")
    command.configure(argparse.ArgumentParser(prog=f"mm {command.name}"))
    return command.name
