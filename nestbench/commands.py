"""Per-task and per-corpus command-line verbs, declared as data and registered in ``tasks/__init__.py``.

``nestbench score <task>`` and ``nestbench download <corpus>`` are generated from that registry, so a
new task adds its scorer (and a new corpus its download) without editing the CLI.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Arg:
    """One ``argparse`` argument: its flags and keyword arguments."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verb:
    """``run(args)`` returns a JSON-able result that the CLI prints (or ``None`` when it printed itself)."""

    name: str
    help: str
    args: tuple[Arg, ...]
    run: Callable[[argparse.Namespace], Any]


def add_verbs(sub: argparse._SubParsersAction, verbs: dict[str, Verb], dest: str) -> None:
    """One subcommand per verb, each calling ``verb.run`` through the CLI's ``func`` hook."""
    for name, verb in verbs.items():
        parser = sub.add_parser(name, help=verb.help, description=verb.help)
        for arg in verb.args:
            parser.add_argument(*arg.flags, **arg.options)
        parser.set_defaults(verb=verb)
