"""A search space as data: one object per swept gin binding, checked when it is built.

Each parameter names an existing binding of the experiment (``'OptimizerSetup.lr'``) and the values
it may take. They are plain dataclasses (the spec binds them through gin, tests build them directly);
a bad range fails here, with the binding named, long before the first trial starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CHOICE_TYPES = (type(None), bool, int, float, str)  # what Optuna can store as a categorical value


def _check_binding(binding: str) -> None:
    if not isinstance(binding, str) or not binding.strip() or any(c.isspace() for c in binding.strip()):
        raise ValueError(f"binding {binding!r}: expected a gin binding such as 'OptimizerSetup.lr'")


def _number(name: str, binding: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{binding}: {name} = {value!r} is not a finite number")
    return value


@dataclass(frozen=True)
class FloatRange:
    """A real value in ``[low, high]``: uniform, or uniform in log space with ``log=True`` (learning
    rates, weight decay); ``step`` makes it a grid of evenly spaced values (needed by the grid sampler)."""

    binding: str
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __post_init__(self) -> None:
        _check_binding(self.binding)
        low, high = _number("low", self.binding, self.low), _number("high", self.binding, self.high)
        if low >= high:
            what = "empty" if low == high else "inverted"
            raise ValueError(f"{self.binding}: {what} range [{low}, {high}]; low must be below high")
        if self.log and low <= 0:
            raise ValueError(f"{self.binding}: a log range needs low > 0 (got {low})")
        if self.step is not None:
            if self.log:
                raise ValueError(f"{self.binding}: a log range cannot have a step")
            if _number("step", self.binding, self.step) <= 0 or self.step > high - low:
                raise ValueError(f"{self.binding}: step {self.step} does not fit in [{low}, {high}]")
            n = (high - low) / self.step
            if abs(n - round(n)) > 1e-8 * max(1.0, n):
                raise ValueError(f"{self.binding}: [{low}, {high}] is not a whole number of steps of {self.step}")

    def distribution(self):
        from optuna.distributions import FloatDistribution

        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def grid(self) -> list[float] | None:
        if self.step is None:
            return None
        n = round((self.high - self.low) / self.step)
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]`` (both included) in steps of ``step``; ``log=True`` for sizes that
    matter by ratio (hidden sizes, batch sizes)."""

    binding: str
    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self) -> None:
        _check_binding(self.binding)
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{self.binding}: {name} = {value!r} is not an integer")
        if self.low >= self.high:
            what = "empty" if self.low == self.high else "inverted"
            raise ValueError(f"{self.binding}: {what} range [{self.low}, {self.high}]; low must be below high")
        if self.step <= 0 or self.step > self.high - self.low:
            raise ValueError(f"{self.binding}: step {self.step} does not fit in [{self.low}, {self.high}]")
        if (self.high - self.low) % self.step:
            raise ValueError(f"{self.binding}: [{self.low}, {self.high}] is not a whole number of steps of {self.step}")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError(f"{self.binding}: a log range needs low > 0 and step 1")

    def distribution(self):
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class Categorical:
    """One of ``choices``: literals only (numbers, strings, booleans, None), as Optuna stores them."""

    binding: str
    choices: Sequence[Any]

    def __post_init__(self) -> None:
        _check_binding(self.binding)
        choices = list(self.choices) if isinstance(self.choices, (list, tuple)) else None
        if not choices:
            raise ValueError(f"{self.binding}: choices must be a non-empty list (got {self.choices!r})")
        for c in choices:
            if not isinstance(c, CHOICE_TYPES) or (isinstance(c, float) and not math.isfinite(c)):
                raise ValueError(f"{self.binding}: choice {c!r} is not a literal (number, string, bool or None)")
        if len({(type(c), c) for c in choices}) != len(choices):
            raise ValueError(f"{self.binding}: repeated choices in {choices!r}")
        if len(choices) < 2:
            raise ValueError(f"{self.binding}: one choice is not a search; bind it in the spec instead")
        object.__setattr__(self, "choices", tuple(choices))

    def distribution(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choices)

    def grid(self) -> list[Any]:
        return list(self.choices)


Param = FloatRange | IntRange | Categorical


def check_space(space: Sequence[Param]) -> tuple[Param, ...]:
    """The space as a tuple; each binding swept once."""
    if not isinstance(space, (list, tuple)) or not space:
        raise ValueError("Sweep.space is empty: list at least one @FloatRange(), @IntRange() or @Categorical()")
    seen: set[str] = set()
    for p in space:
        if not isinstance(p, (FloatRange, IntRange, Categorical)):
            raise ValueError(f"Sweep.space: {p!r} is not a FloatRange, IntRange or Categorical")
        if p.binding in seen:
            raise ValueError(f"Sweep.space: {p.binding} is swept twice")
        seen.add(p.binding)
    return tuple(space)


def gin_literal(value: Any) -> str:
    """``value`` as gin source text. ``repr`` round-trips floats exactly (and keeps ``3.0`` a float),
    so a replayed trial gets the very same number."""
    return repr(value)


def binding_line(binding: str, value: Any) -> str:
    return f"{binding} = {gin_literal(value)}"
