"""The public group API of AdamMultilr: names, variables, learning rates, the GroupTable.

A mixin so that `adam_multilr.py` holds only the optimizer's maths and step plumbing; it relies on
the attributes `AdamMultilr.__init__`/`build` set (`_group_specs`, `_group_lr_variables`,
`_resolution`), on `_step_learning_rates` and on `keras_compat`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from capreolus_opt.optimizer import keras_compat
from capreolus_opt.optimizer.groups import (
    DEFAULT_GROUP,
    MANUAL,
    LearningRateSchedule,
    check_lr,
    check_multiplier,
)
from capreolus_opt.optimizer.table import GroupRow, GroupTable


class Resolution:
    """Static, build-time facts (plain Python; kept out of TF's attribute tracking)."""

    def __init__(self, paths: list[str], groups: list[tuple[int, str | None]]) -> None:
        self.paths = paths
        self.group_of = [g for g, _ in groups]  # variable index -> group index
        self.pattern_of = [p for _, p in groups]


class GroupApiMixin:
    """`group_names`, `variables_by_group`, `group_learning_rates`, `set_group_learning_rate`,
    `set_group_lr_mult`, `set_group_wd_mult`, `group_multipliers`, `group_table`
    (docs/ARCHITECTURE.md, optimizer contract)."""

    @property
    def group_names(self) -> list[str]:
        """Group names in priority order; ``"default"`` last."""
        return [spec.name for spec in self._group_specs] + [DEFAULT_GROUP]

    def _built_resolution(self) -> Resolution:
        if self._resolution is None:
            raise ValueError(
                f"Optimizer {self.name!r} is not built yet: call "
                "`optimizer.build(model.trainable_variables)` (or apply gradients once) first."
            )
        return self._resolution

    def variables_by_group(self) -> dict[str, list[Any]]:
        """`{group: [variables]}` in build order; frozen and empty groups included."""
        resolution = self._built_resolution()
        result: dict[str, list[Any]] = {name: [] for name in self.group_names}
        built = keras_compat.built_variables(self)
        for variable, group in zip(built, resolution.group_of, strict=True):
            result[self.group_names[group]].append(variable)
        return result

    @tf.autograph.experimental.do_not_convert
    def group_learning_rates(self) -> dict[str, Any]:
        """`{group: lr}` now: floats when eager, scalar float32 tensors inside a tf.function."""
        lrs = self._step_learning_rates()
        if tf.executing_eagerly():
            return {
                n: float(keras.ops.convert_to_numpy(lr))
                for n, lr in zip(self.group_names, lrs, strict=True)
            }
        return {n: tf.cast(lr, tf.float32) for n, lr in zip(self.group_names, lrs, strict=True)}

    def set_group_learning_rate(self, name: str, value: float) -> None:
        """Assign a new lr to a float group (or ``"default"``) without retracing any step."""
        if name == DEFAULT_GROUP:
            if isinstance(keras_compat.raw_learning_rate(self), LearningRateSchedule):
                raise ValueError(
                    f"Group {name!r} is driven by a schedule; its learning rate cannot be set."
                )
            checked = check_lr(value, f"set_group_learning_rate({name!r}, value)")
            if not isinstance(checked, float):
                raise TypeError(f"A group lr can only be set to a float. Received: {value!r}")
            self.learning_rate = checked
            return
        names = self.group_names[:-1]
        if name not in names:
            raise ValueError(f"Unknown group {name!r}; groups are {self.group_names}.")
        spec = self._group_specs[names.index(name)]
        variable = self._group_lr_variables[names.index(name)]
        if spec.lr_mult is not None:
            raise ValueError(
                f"Group {name!r} trains at lr_mult x learning_rate; change its multiplier with "
                f"set_group_lr_mult({name!r}, value) or the base with "
                "set_group_learning_rate('default', value)."
            )
        if variable is None:
            kind = "frozen (constant lr 0.0)" if spec.frozen else "driven by a schedule"
            raise ValueError(f"Group {name!r} is {kind}; its learning rate cannot be set.")
        checked = check_lr(value, f"set_group_learning_rate({name!r}, value)")
        if not isinstance(checked, float):
            raise TypeError(f"A group lr can only be set to a float. Received: {value!r}")
        variable.assign(checked)

    def set_group_lr_mult(self, name: str, value: float) -> None:
        """Assign a new ``lr_mult`` to a multiplier group (no retrace; saved in checkpoints)."""
        self._multiplier(name, "lr_mult").assign(
            check_multiplier(value, f"set_group_lr_mult({name!r}, value)")
        )

    def set_group_wd_mult(self, name: str, value: float) -> None:
        """Assign a new ``wd_mult`` to a group that has one (no retrace; saved in checkpoints)."""
        self._multiplier(name, "wd_mult").assign(
            check_multiplier(value, f"set_group_wd_mult({name!r}, value)")
        )

    def group_multipliers(self) -> dict[str, dict[str, float]]:
        """``{group: {"lr_mult": x, "wd_mult": y}}`` for groups with multipliers (call eagerly)."""
        out: dict[str, dict[str, float]] = {}
        for i, name in enumerate(self.group_names[:-1]):
            for key, variables in (
                ("lr_mult", self._group_lr_mult_variables),
                ("wd_mult", self._group_wd_mult_variables),
            ):
                if variables[i] is not None:
                    value = float(keras.ops.convert_to_numpy(variables[i]))
                    out.setdefault(name, {})[key] = value
        return out

    def _multiplier(self, name: str, key: str) -> Any:
        names = self.group_names[:-1]
        if name not in names:
            raise ValueError(f"Unknown group {name!r}; groups with a multiplier are {names}.")
        variables = (
            self._group_lr_mult_variables if key == "lr_mult" else self._group_wd_mult_variables
        )
        variable = variables[names.index(name)]
        if variable is None:
            raise ValueError(
                f"Group {name!r} has no {key!r}: give it one in pattern_lrs "
                f"({{..., {key!r}: 1.0}}) to scale it at run time."
            )
        return variable

    def group_table(self) -> GroupTable:
        """One `GroupRow` per variable (call eagerly, e.g. after `build`)."""
        resolution = self._built_resolution()
        lrs = self.group_learning_rates()
        multipliers = self.group_multipliers()
        starts = self.group_start_steps()
        rows = []
        for variable, path, group, pattern in zip(
            keras_compat.built_variables(self),
            resolution.paths,
            resolution.group_of,
            resolution.pattern_of,
            strict=True,
        ):
            shape = tuple(int(d) for d in variable.shape)
            name = self.group_names[group]
            params = int(np.prod(shape, dtype=np.int64))
            mults = multipliers.get(name, {})
            rows.append(
                GroupRow(
                    path,
                    shape,
                    params,
                    name,
                    pattern,
                    lrs[name],
                    lr_mult=mults.get("lr_mult"),
                    wd_mult=mults.get("wd_mult"),
                    unfreeze_at=starts[name]
                    if starts.get(name) is not None
                    else (MANUAL if name in starts else None),
                )
            )
        return GroupTable(rows, self.group_names)
