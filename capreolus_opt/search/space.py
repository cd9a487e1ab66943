"""``--space`` specs: what a search may change, written against gin bindings.

    NAME=float(LOW, HIGH)          uniform float       NAME=float(LOW, HIGH, log)  log-uniform
    NAME=int(LOW, HIGH)            integer, inclusive  NAME=int(LOW, HIGH, log)
    NAME=[v1, v2, ...]             one of these gin values (the syntax of ``sweep --grid``)

``NAME`` is a gin binding (``AdamMultilr.learning_rate``, ``scope/Configurable.param``) or a gin
macro in capitals (``ENCODER_LR``, used in the config as ``%ENCODER_LR``): group rates are searched
by name through a macro in ``pattern_lrs``. Choices are parsed by the sweep's own grid parser, so
``--space 'NAME=[...]'`` and ``--grid 'NAME=[...]'`` accept the same values (gin literals and
``@references``/``%macros``), and the grid sampler enumerates exactly the sweep's grid.

A trial's suggestion becomes ``NAME = VALUE`` bindings. Optuna stores each parameter under the
binding's name; numeric, boolean and ``None`` choices as their Python value, every other choice
(strings, lists, references) as its gin text.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

from capreolus_opt.search.grid import parse_grid

_RANGE = re.compile(r"^(float|int)\((.*)\)$", re.S)


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched binding: a range (``kind`` float/int) or a list of gin texts (categorical)."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    texts: tuple[str, ...] = ()

    @property
    def choices(self) -> list[Any]:
        """What Optuna stores for each categorical text (see the module docstring)."""
        return [_choice(text) for text in self.texts]

    def suggest(self, trial: Any) -> str:
        """Ask ``trial`` for a value; return it as gin text."""
        if self.kind == "float":
            return repr(trial.suggest_float(self.name, self.low, self.high, log=self.log))
        if self.kind == "int":
            return str(trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log))
        choice = trial.suggest_categorical(self.name, self.choices)
        return self.texts[self.choices.index(choice)]

    def spec(self) -> str:
        """The ``--space`` text that gives this dimension (normalised)."""
        if self.kind == "categorical":
            return f"{self.name}=[{', '.join(self.texts)}]"
        bounds = f"{self.low!r}, {self.high!r}" if self.kind == "float" else (
            f"{int(self.low)}, {int(self.high)}"
        )  # fmt: skip
        return f"{self.name}={self.kind}({bounds}{', log' if self.log else ''})"


def _choice(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if value is None or isinstance(value, bool | int | float):
        return value
    return text


def _number(spec: str, text: str, kind: str) -> float:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"--space {spec!r}: bound {text.strip()!r} is not a finite number")
    if kind == "int" and not isinstance(value, int):
        raise ValueError(f"--space {spec!r}: int() bounds must be integers, got {text.strip()!r}")
    return value


def _range(spec: str, name: str, kind: str, inner: str) -> Dimension:
    parts = [p.strip() for p in inner.split(",")]
    log = len(parts) == 3 and parts[2] == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise ValueError(f"--space {spec!r}: expected {kind}(LOW, HIGH) or {kind}(LOW, HIGH, log)")
    low, high = _number(spec, parts[0], kind), _number(spec, parts[1], kind)
    if not low < high:
        raise ValueError(f"--space {spec!r}: LOW must be below HIGH, got {low!r} >= {high!r}")
    if log and low <= 0:
        raise ValueError(f"--space {spec!r}: a log range needs LOW > 0, got {low!r}")
    return Dimension(name=name, kind=kind, low=low, high=high, log=log)


def parse_space(spec: str) -> Dimension:
    """Parse one ``--space`` spec (module docstring).

    Raises:
        ValueError: naming the spec and what was expected.
    """
    name, sep, rest = spec.partition("=")
    name, rest = name.strip(), rest.strip()
    match = _RANGE.match(rest)
    if sep and match:
        parse_grid(f"{name}=[0]")  # the sweep's check of the binding name
        return _range(spec, name, match.group(1), match.group(2))
    if sep and not rest.startswith("["):
        raise ValueError(
            f"--space {spec!r}: expected NAME=float(LOW, HIGH[, log]), NAME=int(LOW, HIGH[, log]) "
            "or NAME=[v1, v2, ...]"
        )
    name, texts = parse_grid(spec)
    dim = Dimension(name=name, kind="categorical", texts=tuple(texts))
    if len(set(map(repr, dim.choices))) != len(texts):
        raise ValueError(f"--space {spec!r} lists a value twice")
    return dim


def parse_spaces(specs: Sequence[str]) -> list[Dimension]:
    """Parse every spec; a binding may be searched once."""
    if not specs:
        raise ValueError("give at least one --space NAME=...")
    dims = [parse_space(spec) for spec in specs]
    names = [d.name for d in dims]
    if len(set(names)) != len(names):
        raise ValueError(f"--space names a binding twice: {names}")
    return dims


def grid_search_space(dims: Sequence[Dimension]) -> dict[str, list[Any]]:
    """Optuna's ``GridSampler`` search space: every dimension must be a list of values."""
    ranges = [d.name for d in dims if d.kind != "categorical"]
    if ranges:
        raise ValueError(
            f"--sampler grid needs a list of values for every --space; {ranges} are ranges "
            "(write NAME=[v1, v2, ...])"
        )
    return {d.name: d.choices for d in dims}


def grid_size(dims: Sequence[Dimension]) -> int:
    """Number of points in the grid of ``dims`` (all categorical)."""
    return math.prod(len(d.texts) for d in dims)


def suggest_bindings(trial: Any, dims: Sequence[Dimension]) -> list[str]:
    """The trial's point as ``NAME = VALUE`` gin bindings, in ``--space`` order."""
    return [f"{d.name} = {d.suggest(trial)}" for d in dims]
