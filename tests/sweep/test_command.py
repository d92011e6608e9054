"""`nestbench sweep`'s own arguments, parsed without starting anything."""

import argparse

import pytest

from nestbench.sweep.command import add_parser


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nestbench")
    add_parser(parser.add_subparsers())
    return parser.parse_args(["sweep", "spec.gin", "--trials", "4", *argv])


def test_workers_default_to_auto_and_take_integers():
    assert _parse().workers == "auto"
    assert _parse("--workers", "auto").workers == "auto"
    assert _parse("--workers", "3").workers == 3


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_workers_must_be_auto_or_positive(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        _parse("--workers", value)
    assert exit_.value.code == 2
    assert f"argument --workers: expected 'auto' or a positive integer, got '{value}'" in capsys.readouterr().err
