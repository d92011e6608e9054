"""Refuse a configurable value that cannot be right, when the object is built: before any work.

A wrong type or an impossible value (a negative learning rate, ``batch_size = 'eight'``) would
otherwise surface minutes later as a traceback, or not at all, as a useless model. Each setup
object checks its own arguments, so the check holds from a notebook as well as from a spec:

- the types come from the annotations (``int``, ``float`` (ints accepted), ``str``, ``bool`` (not an
  int), ``Literal[...]``, ``X | None``, ``Sequence[...]``, ``tuple[...]``, ``dict[...]``);
- the ranges are ``Rule``s named beside the fields (``lr=greater(0)``);
- rules between fields are plain code raising ``BindingError`` with every binding involved.

``BindingError.bindings`` names the bindings (``'OptimizerSetup.lr'``), so ``nestbench.spec`` can say
where in the spec or which ``--gin`` override set them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class BindingError(ValueError):
    """A configurable value that is not allowed; ``bindings`` are the ``Owner.param`` names involved."""

    def __init__(self, message: str, bindings: Sequence[str]):
        super().__init__(message)
        self.bindings = tuple(bindings)

    @classmethod
    def of(cls, binding: str, value: Any, allowed: str) -> BindingError:
        return cls(f"{binding} = {value!r}: {allowed}", (binding,))


@dataclass(frozen=True)
class Rule:
    """A range or format rule for one value; ``None`` always passes (optional fields are typed ``X | None``)."""

    test: Callable[[Any], bool]
    allowed: str  # completes "must ...", e.g. "be > 0"


def greater(low: float) -> Rule:
    return Rule(lambda v: v > low, f"be > {low}")


def at_least(low: float) -> Rule:
    return Rule(lambda v: v >= low, f"be >= {low}")


def between(low: float, high: float, *, high_open: bool = False) -> Rule:
    """``[low, high]``, or ``[low, high)`` with ``high_open``: dropout 1.0 drops everything."""
    if high_open:
        return Rule(lambda v: low <= v < high, f"be in [{low}, {high})")
    return Rule(lambda v: low <= v <= high, f"be in [{low}, {high}]")


def each(rule: Rule) -> Rule:
    return Rule(lambda vs: all(rule.test(v) for v in vs), f"have every value {rule.allowed.removeprefix('be ')}")


def equal(target: Any) -> Rule:
    return Rule(lambda v: v == target, f"be {target!r}")


def either(*rules: Rule) -> Rule:
    words = [rules[0].allowed, *(r.allowed.removeprefix("be ") for r in rules[1:])]
    return Rule(lambda v: any(r.test(v) for r in rules), " or ".join(words))


NON_EMPTY = Rule(lambda v: len(v) > 0, "not be empty")
SEED = between(0, 2**32 - 1)  # Lightning's seed_everything replaces a seed outside this range by a random one


def check_fields(obj: Any, **rules: Rule) -> None:
    """Check a dataclass's fields against their annotations, then against ``rules`` (call from ``__post_init__``)."""
    owner = type(obj).__name__
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    _check(owner, values, _hints(type(obj)), rules)


def checked(**rules: Rule):
    """Decorate ``__init__`` (or a factory function) so that its arguments are checked before it runs."""

    def decorate(fn):
        owner = fn.__qualname__.split(".")[0]
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = {k: v for k, v in bound.arguments.items() if k != "self"}
            _check(owner, values, _hints(fn), rules)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


@functools.cache
def _hints(target) -> dict[str, Any]:
    return typing.get_type_hints(target)


def _check(owner: str, values: dict[str, Any], hints: dict[str, Any], rules: dict[str, Rule]) -> None:
    for name, value in values.items():
        annotation = hints.get(name, Any)
        if not matches(value, annotation):
            raise BindingError.of(f"{owner}.{name}", value, f"must be {describe(annotation)}")
    for name, rule in rules.items():
        value = values[name]
        if value is not None and not rule.test(value):
            raise BindingError.of(f"{owner}.{name}", value, f"must {rule.allowed}")


def matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits ``annotation``; what this cannot judge (a protocol such as ``Task``) passes."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return not args or (len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args, strict=True)))
    if origin in (Sequence, list):
        return isinstance(value, (list, tuple)) and all(matches(v, args[0]) for v in value if args)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False
        return not args or all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    if isinstance(annotation, type) and not getattr(annotation, "_is_protocol", False):
        return isinstance(value, annotation)  # a setup object in its slot (Experiment.encoder = @EncoderSetup())
    return True


def describe(annotation: Any) -> str:
    """What ``annotation`` allows, in words: ``"an int or None"``, ``"one of 'frozen', 'finetune'"``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    names = {bool: "True or False", int: "an int", float: "a finite number", str: "a string"}
    if annotation in names:
        return names[annotation]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a tuple of {len(args)} ({', '.join(describe(a) for a in args)})"
    if origin in (Sequence, list):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin in (dict, Mapping):
        return "a dict"
    name = getattr(annotation, "__name__", str(annotation))
    return f"{'an' if name[:1] in 'AEIOU' else 'a'} {name}"


def _plural(annotation: Any) -> str:
    return {int: "ints", float: "numbers", str: "strings"}.get(annotation, describe(annotation))
