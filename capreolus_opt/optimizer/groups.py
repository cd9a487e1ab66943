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
from capreolus_opt.optimizer.bounded_regex import BoundedPattern, compile_bounded

DEFAULT_GROUP = "default"
_GROUP_KEYS = (
    "patterns",
    "lr",
    "lr_mult",
    "name",
    "weight_decay",
    "wd_mult",
    "unfreeze_at",
    "unfreeze_warmup",
)
MANUAL = "manual"  # "unfreeze_at": frozen until `unfreeze_group(name)` is called
LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule
# Group names end up in metric names (`group/<name>/lr`) and in gin scopes: no "/", no spaces.
_SAFE_NAME = re.compile(r"[0-9A-Za-z_.-]+")


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """One learning-rate group: the regexes that select it and how its lr and decay are set.

    Exactly one of `lr` (an absolute float or schedule) and `lr_mult` (a factor on the
    optimizer's base `learning_rate`, itself a float or a schedule) is set; at most one of
    `weight_decay` (absolute) and `wd_mult` (a factor on the base `weight_decay`).
    """

    name: str
    patterns: tuple[str, ...]
    lr: float | LearningRateSchedule | None
    weight_decay: float | None = None
    regexes: tuple[BoundedPattern, ...] = dataclasses.field(default=(), compare=False, repr=False)
    lr_mult: float | None = None
    wd_mult: float | None = None
    unfreeze_at: int | str | None = None  # a step, or MANUAL; None = trains from the start
    unfreeze_warmup: int = 0

    @property
    def frozen(self) -> bool:
        """A constant lr of exactly 0.0 freezes the group (no slots, no updates, no decay).

        ``lr_mult = 0.0`` does not: a multiplier is a variable that may be raised later.
        """
        return isinstance(self.lr, float) and self.lr == 0.0

    def to_config(self) -> dict[str, Any]:
        """The canonical dict form, JSON-able (schedules are Keras-serialised)."""
        config: dict[str, Any] = {"name": self.name, "patterns": list(self.patterns)}
        if self.lr_mult is not None:
            config["lr_mult"] = self.lr_mult
        else:
            lr = self.lr
            if isinstance(lr, LearningRateSchedule):
                lr = keras.optimizers.schedules.serialize(lr)
            config["lr"] = lr
        if self.wd_mult is not None:
            config["wd_mult"] = self.wd_mult
        else:
            config["weight_decay"] = self.weight_decay
        if self.unfreeze_at is not None:
            config["unfreeze_at"] = self.unfreeze_at
            config["unfreeze_warmup"] = self.unfreeze_warmup
        return config


def _check_schedule(entry: Mapping[str, Any], where: str, lr: Any) -> tuple[Any, int]:
    """``(unfreeze_at, unfreeze_warmup)`` of a group dict, validated."""
    at, warmup = entry.get("unfreeze_at"), entry.get("unfreeze_warmup", 0)
    if at is None:
        if warmup:
            raise ValueError(
                f"{where}['unfreeze_warmup'] needs 'unfreeze_at' (the warm-up starts when the "
                f"group is unfrozen). Received: {dict(entry)!r}"
            )
        return None, 0
    if at != MANUAL and (isinstance(at, bool) or not isinstance(at, int) or at < 0):
        raise ValueError(
            f"{where}['unfreeze_at'] must be a step (an int >= 0) or {MANUAL!r}. Received: {at!r}"
        )
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"{where}['unfreeze_warmup'] must be an int >= 0. Received: {warmup!r}")
    if isinstance(lr, float) and lr == 0.0:
        raise ValueError(
            f"{where} has 'lr': 0.0 (frozen for good) and 'unfreeze_at' {at!r}: give it the lr "
            "it should train at once unfrozen."
        )
    return at, warmup


def check_multiplier(value: Any, where: str) -> float:
    """A finite float >= 0 (ints accepted); schedules belong on the base learning_rate."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where} must be a float >= 0 (put schedules on the base learning_rate). "
            f"Received: {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{where} must be a finite float >= 0. Received: {value!r}")
    return value


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


def _compile_patterns(
    patterns: Any, where: str
) -> tuple[tuple[str, ...], tuple[BoundedPattern, ...]]:
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
        # Matched with a time bound: a pattern that backtracks catastrophically is refused.
        regexes.append(compile_bounded(pattern, where_item(j)))
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
            if "patterns" not in entry:
                raise ValueError(f"{where} is missing the key 'patterns'. Received: {entry!r}")
            if ("lr" in entry) == ("lr_mult" in entry):
                raise ValueError(
                    f"{where} must have exactly one of the keys 'lr' (an absolute rate) and "
                    f"'lr_mult' (a factor on learning_rate). Received: {dict(entry)!r}"
                )
            if "weight_decay" in entry and "wd_mult" in entry:
                raise ValueError(
                    f"{where} may have 'weight_decay' (absolute) or 'wd_mult' (a factor on the "
                    f"base weight_decay), not both. Received: {dict(entry)!r}"
                )
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
        lr = check_lr(entry["lr"], where_lr) if "lr" in entry else None
        lr_mult = entry.get("lr_mult")
        if lr_mult is not None or "lr_mult" in entry:
            lr_mult = check_multiplier(lr_mult, f"{where}['lr_mult']")
        wd_mult = entry.get("wd_mult")
        if wd_mult is not None or "wd_mult" in entry:
            wd_mult = check_multiplier(wd_mult, f"{where}['wd_mult']")
        weight_decay = check_weight_decay(entry.get("weight_decay"), f"{where}['weight_decay']")
        unfreeze_at, unfreeze_warmup = _check_schedule(entry, where, lr)
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
        specs.append(
            GroupSpec(
                name,
                patterns,
                lr,
                weight_decay,
                regexes,
                lr_mult,
                wd_mult,
                unfreeze_at,
                unfreeze_warmup,
            )
        )
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
