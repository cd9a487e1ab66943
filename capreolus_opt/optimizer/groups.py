"""Parsing, validation and resolution of AdamMultilr's regex learning-rate groups.

`pattern_lrs` comes in three user-facing forms (a list of group dicts, a ``{regex: lr}`` dict, a
list of ``(regex, lr)`` pairs); all are normalised here into `GroupSpec`s, validated once at
construction, and resolved against variable paths once, when the optimizer is built.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from capreolus_opt.optimizer.arguments import check_schedule_at_step_0, check_weight_decay

DEFAULT_GROUP = "default"
_GROUP_KEYS = ("patterns", "lr", "name", "weight_decay")
LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule
# Group names end up in metric names (`group/<name>/lr`) and in gin scopes: no "/", no spaces.
_SAFE_NAME = re.compile(r"[0-9A-Za-z_.-]+")


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """One learning-rate group: the regexes that select it, its lr and optional weight decay."""

    name: str
    patterns: tuple[str, ...]
    lr: float | LearningRateSchedule
    weight_decay: float | None = None
    regexes: tuple[re.Pattern, ...] = dataclasses.field(default=(), compare=False, repr=False)

    @property
    def frozen(self) -> bool:
        """A constant lr of exactly 0.0 freezes the group (no slots, no updates, no decay)."""
        return not isinstance(self.lr, LearningRateSchedule) and self.lr == 0.0

    def to_config(self) -> dict[str, Any]:
        """The canonical dict form, JSON-able (schedules are Keras-serialised)."""
        lr = self.lr
        if isinstance(lr, LearningRateSchedule):
            lr = keras.optimizers.schedules.serialize(lr)
        return {
            "name": self.name,
            "patterns": list(self.patterns),
            "lr": lr,
            "weight_decay": self.weight_decay,
        }


def check_lr(value: Any, where: str) -> float | LearningRateSchedule:
    """A validated group lr: a float >= 0 (ints accepted), a schedule, or a serialised schedule."""
    if isinstance(value, Mapping) and "class_name" in value:  # a serialised schedule (from_config)
        value = keras.optimizers.schedules.deserialize(dict(value))
    if isinstance(value, LearningRateSchedule):
        check_schedule_at_step_0(value, where)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where} must be a float >= 0 or a keras.optimizers.schedules.LearningRateSchedule. "
            f"Received: {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{where} must be a finite float >= 0. Received: {value!r}")
    return value


def _compile_patterns(patterns: Any, where: str) -> tuple[tuple[str, ...], tuple[re.Pattern, ...]]:
    if isinstance(patterns, str):
        patterns, where_item = [patterns], lambda _: where
    elif isinstance(patterns, Sequence):
        patterns, where_item = list(patterns), lambda j: f"{where}[{j}]"
        if not patterns:
            raise ValueError(f"{where} must contain at least one regex. Received: []")
    else:
        raise TypeError(
            f"{where} must be a regex string or a list of regex strings. Received: {patterns!r}"
        )
    regexes = []
    for j, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise TypeError(
                f"{where_item(j)} must be a regex string. "
                f"Received: {pattern!r} of type {type(pattern).__name__}"
            )
        try:
            regexes.append(re.compile(pattern))
        except re.error as error:
            raise ValueError(
                f"{where_item(j)} is not a valid regex: {error}. Received: {pattern!r}"
            ) from None
    return tuple(patterns), tuple(regexes)


def _derived_name(patterns: tuple[str, ...], index: int) -> str:
    name = re.sub(r"[^0-9A-Za-z_.-]+", "_", "|".join(patterns)).strip("_.")
    return name or f"group_{index}"


def _entries(pattern_lrs: Any) -> list[tuple[str, str, str, Mapping[str, Any]]]:
    """Normalise the accepted forms into (where, where_patterns, where_lr, group dict) tuples."""
    if isinstance(pattern_lrs, Mapping):
        return [
            (
                f"pattern_lrs[{key!r}]",
                "pattern_lrs key",
                f"pattern_lrs[{key!r}]",
                {"patterns": key, "lr": lr},
            )
            for key, lr in pattern_lrs.items()
        ]
    if isinstance(pattern_lrs, str) or not isinstance(pattern_lrs, Sequence):
        raise TypeError(
            "pattern_lrs must be None, a list of {'patterns': [...], 'lr': ...} dicts, a "
            f"{{regex: lr}} dict or a list of (regex, lr) pairs. Received: {pattern_lrs!r}"
        )
    entries = []
    for i, entry in enumerate(pattern_lrs):
        where = f"pattern_lrs[{i}]"
        if isinstance(entry, Mapping):
            unknown = sorted(set(entry) - set(_GROUP_KEYS), key=str)
            if unknown:
                raise ValueError(
                    f"{where} has unknown key(s) {unknown}; expected keys {list(_GROUP_KEYS)}. "
                    f"Received: {dict(entry)!r}"
                )
            for key in ("patterns", "lr"):
                if key not in entry:
                    raise ValueError(f"{where} is missing the key {key!r}. Received: {entry!r}")
            entries.append((where, f"{where}['patterns']", f"{where}['lr']", entry))
        elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
            group = {"patterns": entry[0], "lr": entry[1]}
            entries.append((where, f"{where}[0]", f"{where}[1]", group))
        else:
            raise TypeError(
                f"{where} must be a dict with keys 'patterns' and 'lr' or a (regex, lr) pair. "
                f"Received: {entry!r}"
            )
    return entries


def parse_pattern_lrs(pattern_lrs: Any) -> list[GroupSpec]:
    """Validate `pattern_lrs` (any accepted form) and return the groups in priority order.

    Raises:
        TypeError / ValueError naming the offending entry (e.g. ``pattern_lrs[1]['patterns'][0]``)
        and the value received.
    """
    if pattern_lrs is None:
        return []
    specs: list[GroupSpec] = []
    explicit: dict[str, str] = {}
    for i, (where, where_patterns, where_lr, entry) in enumerate(_entries(pattern_lrs)):
        patterns, regexes = _compile_patterns(entry["patterns"], where_patterns)
        lr = check_lr(entry["lr"], where_lr)
        weight_decay = check_weight_decay(entry.get("weight_decay"), f"{where}['weight_decay']")
        name = entry.get("name")
        if name is None:
            name = _derived_name(patterns, i)
        else:
            if not isinstance(name, str) or not name:
                raise TypeError(f"{where}['name'] must be a non-empty string. Received: {name!r}")
            if not _SAFE_NAME.fullmatch(name):
                raise ValueError(
                    f"{where}['name'] must use only letters, digits, '_', '.' and '-' (it becomes "
                    f"part of metric names such as group/<name>/lr). Received: {name!r}"
                )
            if name == DEFAULT_GROUP:
                raise ValueError(
                    f"{where}['name'] may not be {DEFAULT_GROUP!r}: that name is reserved for "
                    "the variables no pattern matches."
                )
            if name in explicit:
                raise ValueError(
                    f"Duplicate group name {name!r}: {explicit[name]}['name'] and {where}['name']."
                )
            explicit[name] = where
        specs.append(GroupSpec(name, patterns, lr, weight_decay, regexes))
    return _dedupe_derived_names(specs, explicit)


def _dedupe_derived_names(specs: list[GroupSpec], explicit: dict[str, str]) -> list[GroupSpec]:
    taken = set(explicit) | {DEFAULT_GROUP}
    result = []
    for i, spec in enumerate(specs):
        name = spec.name
        if name not in explicit:
            while name in taken:
                name = f"{spec.name}_{i}" if name == spec.name else f"{name}_"
            taken.add(name)
        result.append(dataclasses.replace(spec, name=name))
    return result


def variable_path(variable: Any) -> str:
    """The name users write patterns against: Keras `path`, else `name` without ``:0``."""
    path = getattr(variable, "path", None)
    if isinstance(path, str):
        return path
    return re.sub(r":\d+$", "", str(variable.name))


def resolve_groups(
    specs: Sequence[GroupSpec], paths: Sequence[str]
) -> list[tuple[int, str | None]]:
    """For each path, `(group index, matching pattern)`; unmatched -> `(len(specs), None)`.

    `re.search` semantics; the first group in order wins, and within a group the first pattern.
    """
    result = []
    for path in paths:
        match = (len(specs), None)
        for index, spec in enumerate(specs):
            hit = next((r.pattern for r in spec.regexes if r.search(path)), None)
            if hit is not None:
                match = (index, hit)
                break
        result.append(match)
    return result


def unmatched_messages(
    specs: Sequence[GroupSpec], paths: Sequence[str], assignment: Sequence[tuple[int, str | None]]
) -> list[str]:
    """One message per group that received no variable and per pattern that matches none."""
    counts = [0] * (len(specs) + 1)
    for index, _ in assignment:
        counts[index] += 1
    sample = ", ".join(repr(p) for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
    messages = []
    for index, spec in enumerate(specs):
        dead = [r.pattern for r in spec.regexes if not any(r.search(p) for p in paths)]
        if counts[index] == 0:
            messages.append(
                f"Group {spec.name!r} (patterns {list(spec.patterns)}) matched no variable; its "
                f"variables would silently train at another lr. Variable paths look like: {sample}"
            )
        elif dead:
            messages.append(
                f"Pattern(s) {dead} of group {spec.name!r} matched no variable. "
                f"Variable paths look like: {sample}"
            )
    return messages
