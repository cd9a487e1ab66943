"""Grids of gin bindings: ``NAME=[v1, v2, ...]`` specs, their Cartesian product, seed repeats.

Shared by ``sweep`` (launchers/sweep.py), which runs every point, and ``tune --space`` (space.py),
which checks binding names the same way.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Sequence

# ``Configurable.param`` (scoped: ``scope/Configurable.param``) or a gin macro's name in capitals
# (``ENCODER_LR``, bound as ``ENCODER_LR = 1e-3`` and used as ``%ENCODER_LR``); a lower-case bare
# name is more likely a parameter missing its configurable (``learning_rate``) and is refused.
_NAME = re.compile(r"^([A-Z_][A-Z0-9_]*|[A-Za-z_][\w.]*(/[A-Za-z_][\w.]*)*\.[A-Za-z_]\w*)$")
_PAIRS = {"[": "]", "(": ")", "{": "}"}


def split_top_level(text: str) -> list[str]:
    """Split ``text`` on commas outside brackets and quotes; items are stripped."""
    items, depth, quote, start = [], [], None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in _PAIRS:
            depth.append(_PAIRS[ch])
        elif depth and ch == depth[-1]:
            depth.pop()
        elif ch in ")]}":
            raise ValueError(f"unbalanced {ch!r} in {text!r}")
        elif ch == "," and not depth:
            items.append(text[start:i].strip())
            start = i + 1
    if quote or depth:
        raise ValueError(f"unterminated quote or bracket in {text!r}")
    items.append(text[start:].strip())
    return items


def _check_value(name: str, text: str) -> None:
    if re.fullmatch(r"[@%][A-Za-z_][\w./]*(\(\))?", text):
        return  # gin reference (@configurable, @configurable()) or macro (%NAME)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(
            f"--grid {name}: value {text!r} is not a gin literal (number, True/False/None, "
            "quoted string, list/tuple) nor an @reference/%macro"
        ) from exc


def parse_grid(spec: str) -> tuple[str, list[str]]:
    """Parse ``NAME=[v1, v2, ...]`` (or ``NAME=v``) into the name and the values' gin text.

    Raises:
        ValueError: naming the spec when the name is not ``Configurable.param`` or a value is not
            a gin literal or reference, or the list is empty.
    """
    name, sep, rest = spec.partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not _NAME.match(name):
        raise ValueError(
            f"--grid {spec!r} is not of the form 'Configurable.param=[value, ...]' or "
            f"'MACRO=[value, ...]' with MACRO in capitals (name {name!r})"
        )
    if rest.startswith("[") and rest.endswith("]"):
        values = [v for v in split_top_level(rest[1:-1]) if v]
    else:
        values = [rest] if rest else []
    if not values:
        raise ValueError(f"--grid {spec!r} gives no values")
    for value in values:
        _check_value(name, value)
    return name, values


def grid_points(specs: Sequence[str]) -> list[list[str]]:
    """Every combination of the grids, as lists of ``'NAME = VALUE'`` gin bindings."""
    parsed = [parse_grid(spec) for spec in specs]
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"--grid names a binding twice: {names}")
    return [
        [f"{name} = {value}" for name, value in zip(names, combo, strict=True)]
        for combo in itertools.product(*(values for _, values in parsed))
    ]


def with_seeds(points: Sequence[list[str]], seeds: int, extra: Sequence[str] = ()) -> list:
    """Each point repeated with ``train.seed = 0 .. seeds-1`` (``--seeds``; 0 = as given).

    Raises:
        ValueError: for a negative count, or when the grid or ``extra`` bindings already bind
            ``train.seed`` (the two would disagree about which seed a run used).
    """
    if seeds < 0:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if seeds == 0:
        return list(points)
    for binding in [*extra, *(b for point in points for b in point)]:
        if binding.partition("=")[0].strip() == "train.seed":
            raise ValueError(f"--seeds {seeds} conflicts with the binding {binding!r}")
    return [[*point, f"train.seed = {seed}"] for point in points for seed in range(seeds)]
