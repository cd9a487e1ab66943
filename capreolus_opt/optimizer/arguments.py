"""Construction-time checks of AdamMultilr's scalar arguments (stock Keras checks none of them).

Keras 3.15 accepts ``weight_decay=float("nan")`` (every weight becomes NaN at the first step),
``weight_decay="0.01"`` (a TypeError only inside the first traced step), ``beta_1=1.5``,
``epsilon=-1`` and any truthy ``strict``. Each check here raises at construction, naming the
argument, the value received and what was expected.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
import tensorflow as tf

LearningRateSchedule = keras.optimizers.schedules.LearningRateSchedule


def _real(value: Any, where: str, expected: str) -> float:
    if isinstance(value, bool | str) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{where} must be {expected}. Received: {value!r} of type {type(value).__name__}"
        )
    return float(value)


def check_weight_decay(value: Any, where: str = "weight_decay") -> float | None:
    """None, or a finite float >= 0."""
    if value is None:
        return None
    value = _real(value, where, "a float >= 0 or None")
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{where} must be a finite float >= 0 or None. Received: {value!r}")
    return value


def check_beta(value: Any, where: str) -> float:
    """A float in [0, 1): beta = 1 never forgets and makes Adam's bias correction divide by 0."""
    value = _real(value, where, "a float in [0, 1)")
    if not 0.0 <= value < 1.0:  # also False for NaN
        raise ValueError(f"{where} must be a float in [0, 1). Received: {value!r}")
    return value


def check_epsilon(value: Any) -> float:
    value = _real(value, "epsilon", "a float >= 0")
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"epsilon must be a finite float >= 0. Received: {value!r}")
    return value


def check_bool(value: Any, where: str) -> bool:
    # `strict="no"` would otherwise be truthy and silently turn warnings into errors.
    if not isinstance(value, bool):
        raise TypeError(
            f"{where} must be True or False. Received: {value!r} of type {type(value).__name__}"
        )
    return value


def check_schedule_at_step_0(schedule: LearningRateSchedule, where: str) -> None:
    """Evaluate `schedule` at step 0 eagerly: a negative or NaN start fails now, not mid-run."""
    try:
        with tf.init_scope():
            value = float(keras.ops.convert_to_numpy(schedule(0)))
    except Exception as err:  # a schedule is user code: any failure is reported with its name
        raise ValueError(
            f"{where} ({type(schedule).__name__}) could not be evaluated at step 0: {err}"
        ) from err
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(
            f"{where} ({type(schedule).__name__}) must give a finite learning rate >= 0; at step "
            f"0 it gives {value!r}"
        )
