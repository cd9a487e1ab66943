"""Scheduled unfreezing: a group that stays frozen until step N, or until `unfreeze_group(name)`.

A group with ``"unfreeze_at": N`` (or ``"manual"``) keeps one int64 variable, the optimizer step
from which it trains (``"manual"``: a sentinel far in the future, pulled forward by
`unfreeze_group`). At every step, with ``it = optimizer.iterations`` (updates applied so far):

- frozen (``it < start``): its variables AND its moments do not change (the update is inside a
  ``tf.cond``), its gradients are left out of ``global_clipnorm``, its reported lr is 0;
- training: Adam runs with the group's own step count ``t = it - start + 1`` in the bias
  correction (as if the group had just been created: with the global count, the first steps
  after unfreezing would be ~3x too large, since m and v start from zero), and the group's lr
  ramps linearly over ``"unfreeze_warmup": W`` steps: ``lr * min(1, t / W)``.

The start step is a checkpointed variable and nothing depends on Python state, so a run resumed
across the unfreeze point follows the uninterrupted trajectory exactly, and nothing retraces.

Memory trade-off: the moments of a scheduled group are allocated when the optimizer is built
(2x the group's parameters, 3x with amsgrad), even while it is frozen, because creating them at
the unfreeze step would change the traced graph (a retrace, and under ``tf.distribute`` a
variable creation inside a replica function). A group frozen for the whole run is cheaper as
``"lr": 0.0``: no slots at all.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from capreolus_opt.optimizer import keras_compat
from capreolus_opt.optimizer.groups import MANUAL

# "Not yet": the start step of a manual group before `unfreeze_group`; far beyond any run.
NEVER = 2**62


class UnfreezeMixin:
    """`unfreeze_group`, the per-group clock and the Adam step at a group's own step count.

    Relies on `_group_specs`, `group_names`, `iterations` and the slot lists of AdamMultilr.
    """

    def _start_step_variables(self) -> list[Any]:
        out = []
        for i, spec in enumerate(self._group_specs):
            if spec.unfreeze_at is None:
                out.append(None)
                continue
            start = NEVER if spec.unfreeze_at == MANUAL else spec.unfreeze_at
            out.append(
                self.add_variable(
                    shape=(),
                    initializer=keras.initializers.Constant(start),
                    dtype="int64",
                    aggregation="only_first_replica",
                    name=f"group_start_step_{i}",
                )
            )
        return out

    def unfreeze_group(self, name: str) -> None:
        """Let a scheduled group train from the next step on (no-op when it already trains)."""
        names = self.group_names[:-1]
        if name not in names:
            raise ValueError(f"Unknown group {name!r}; groups are {self.group_names}.")
        start = self._group_start_steps[names.index(name)]
        if start is None:
            raise ValueError(
                f"Group {name!r} has no unfreeze schedule; give it 'unfreeze_at' (a step, or "
                "'manual') in pattern_lrs to freeze it first."
            )
        start.assign(tf.minimum(start.value, tf.cast(self.iterations, tf.int64)))

    def group_start_steps(self) -> dict[str, int | None]:
        """``{group: first training step}`` of scheduled groups; None = manual, not yet unfrozen."""
        out = {}
        for name, start in zip(self.group_names, self._group_start_steps, strict=False):
            if start is not None:
                value = int(keras.ops.convert_to_numpy(start))
                out[name] = None if value >= NEVER else value
        return out

    def _group_clock(self, group: int) -> tuple[tf.Tensor, tf.Tensor] | None:
        """``(trains now, the group's own step t >= 1 when it does)``; None if not scheduled."""
        if group >= len(self._group_specs) or self._group_start_steps[group] is None:
            return None
        iterations = tf.cast(self.iterations, tf.int64)
        start = tf.convert_to_tensor(self._group_start_steps[group])
        return iterations >= start, iterations - start + 1

    def _clock_factor(self, group: int, clock: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        """0 while frozen, then the warm-up ramp ``min(1, t / W)`` (1 without warm-up)."""
        active, local_step = clock
        warmup = self._group_specs[group].unfreeze_warmup
        factor = tf.constant(1.0, tf.float32)
        if warmup:
            factor = tf.minimum(factor, tf.cast(local_step, tf.float32) / float(warmup))
        return tf.where(active, factor, tf.zeros_like(factor))

    def _update_step_at(self, gradient: Any, variable: Any, learning_rate: Any, step: Any) -> None:
        """Keras 3.15 `Adam.update_step`, with `step` in place of ``iterations + 1``."""
        ops = keras.ops
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        local_step = ops.cast(step, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), local_step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), local_step)
        index = keras_compat.variable_index(self, variable)
        m, v = (keras_compat.adam_slot(self, k, index) for k in ("momentum", "velocity"))
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_hat = keras_compat.adam_slot(self, "velocity_hat", index)
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        self.assign_sub(
            variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon))
        )
