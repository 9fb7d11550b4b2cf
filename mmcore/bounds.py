"""Accepted values, checked after the types: the second half of a schema.

OmegaConf checks that ``train.steps`` is an integer; a `Range` says it is at
least 1. A table maps each dataclass to the bounds of its fields
(`mmcore.config.BOUNDS`) and `check_values` walks a merged config by the
dataclass of each node, so a recipe and a ``config.json`` are held to the same
bounds, and a bad value is one line naming the key, what was found and what is
accepted, before anything is built or run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf


@dataclass(frozen=True)
class Range:
    """Finite numbers from ``low`` to ``high`` (inclusive unless ``*_open``); ``count``: a list of that many."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    count: int | None = None

    def accepts(self, value: Any) -> bool:
        if self.count is None:
            return self._one(value)
        return isinstance(value, (list, tuple)) and len(value) == self.count and all(map(self._one, value))

    def _one(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int if self.integer else (int, float)) or not math.isfinite(v):
            return False
        above = self.low is None or (v > self.low if self.low_open else v >= self.low)
        below = self.high is None or (v < self.high if self.high_open else v <= self.high)
        return above and below

    def __str__(self) -> str:
        noun = "an integer" if self.integer else "a finite number"
        if self.count is not None:
            noun = f"a list of {self.count} {'integers' if self.integer else 'numbers'}, each"
        if self.high is None:
            return f"{noun} {'>' if self.low_open else '>='} {_num(self.low)}"
        return f"{noun} in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class OneOf:
    """One of a few names (``None`` shown as null)."""

    values: tuple

    def accepts(self, value: Any) -> bool:
        return value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join("null" if v is None else str(v) for v in self.values)


@dataclass(frozen=True)
class Each:
    """The same bound for every value of a free-keyed map (``train.loss_weights``)."""

    bound: Range | OneOf


def integers(low: int, high: int | None = None) -> Range:
    return Range(low, high, integer=True)


def numbers(low: float, high: float | None = None, low_open: bool = False, high_open: bool = False) -> Range:
    return Range(low, high, low_open, high_open)


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def shown(value: Any) -> str:
    """A found value as the one-line errors show it: null, a list [...], a mapping, or its repr (cut short)."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value)
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return f"a list {list(value)}"[:80]
    return "a mapping" if isinstance(value, dict) else repr(value)[:80]


Bound = Range | OneOf | Each
Fail = Callable[[str, str, str], Exception]  # (key, found as shown, accepted) → the error to raise


def check_values(node: DictConfig, table: dict[type, dict[str, Bound]], fail: Fail, prefix: str = "") -> None:
    """Every bounded field of ``node`` and of the nodes under it, found by each node's dataclass."""
    bounds = table.get(OmegaConf.get_type(node), {})
    for key, value in node.items_ex(resolve=False):
        full = f"{prefix}{key}"
        bound = bounds.get(str(key))
        if isinstance(bound, Each):
            for k, v in value.items_ex(resolve=False) if isinstance(value, DictConfig) else []:
                if not bound.bound.accepts(v):
                    raise fail(f"{full}.{k}", shown(v), str(bound.bound))
        elif bound is not None:
            plain = OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
            if not bound.accepts(plain):
                raise fail(full, shown(plain), str(bound))
        if isinstance(value, DictConfig) and not isinstance(bound, Each):
            check_values(value, table, fail, f"{full}.")
