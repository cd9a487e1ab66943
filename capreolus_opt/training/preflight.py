"""Checks a training's arguments the way :func:`~capreolus_opt.training.train` will use them,
before a run is recorded: the loop's plan against the strategy, the optimizer constructed inside
the strategy's scope (every argument, ``pattern_lrs`` included), every learning-rate schedule
over the steps it will be evaluated at, and, for ``strict`` optimizers, the groups against the
model's variables.

Values that are legal but almost surely mistakes come back as warnings (one line each): no
training steps, no training metrics, a group that stays frozen for the whole run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf

from capreolus_opt.optimizer.groups import MANUAL, parse_pattern_lrs
from capreolus_opt.training.plan import Plan, validate

#: How many evenly spaced steps of a run a schedule is evaluated at (besides its first and last
#: step and a piecewise schedule's boundaries).
SCHEDULE_SAMPLES = 64


def preflight(
    *,
    strategy: Any,
    optimizer: Any,
    task: Any = None,
    check_model: bool = False,
    **plan_args: Any,
) -> list[str]:
    """Validate a training; return warnings (one line each).

    Args:
        strategy: the ``tf.distribute.Strategy`` the run will use.
        optimizer: an optimizer or a zero-argument factory (what ``train(optimizer=)`` takes).
        task: the task; needed only with ``check_model``.
        check_model: build the task's model and the optimizer on its variables (what a
            ``strict`` optimizer needs to find a pattern that matches nothing).
        **plan_args: ``train``'s loop arguments (``num_steps``, ``global_batch_size``, ...).

    Raises:
        ValueError, TypeError: naming the bad value.
    """
    plan = Plan(**{name: plan_args[name] for name in Plan.__dataclass_fields__})
    validate(plan, strategy)
    _check_seed(plan.seed)
    with strategy.scope():
        opt = optimizer() if callable(optimizer) and not hasattr(optimizer, "apply") else optimizer
        if check_model and task is not None and getattr(opt, "strict", False):
            _check_groups_match(opt, task)
    found = _check_schedules(opt, plan.num_steps)
    if plan.num_steps == 0:
        found.append("train.num_steps = 0: the run records an untrained model as COMPLETED.")
    if plan.metrics_every == 0:
        found.append("train.metrics_every = 0: no training metrics are recorded (off).")
    return found


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0. Received: {seed!r}")


def _check_groups_match(opt: Any, task: Any) -> None:
    """Build the model and the optimizer on its variables; strict raises for a dead pattern."""
    model = task.build_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        opt.build(model.trainable_variables)


def _check_schedules(opt: Any, num_steps: int) -> list[str]:
    """Every schedule (base and groups) gives a finite lr >= 0 over the run; returns warnings
    for groups that never unfreeze."""
    config = opt.get_config() if hasattr(opt, "get_config") else {}
    found: list[str] = []
    base = config.get("learning_rate")
    if isinstance(base, Mapping) and "class_name" in base:  # a schedule, serialised
        schedule = keras.optimizers.schedules.deserialize(dict(base))
        check_schedule(schedule, "learning_rate", num_steps)
    if not config.get("pattern_lrs"):
        return found
    for spec in parse_pattern_lrs(config["pattern_lrs"]):
        if isinstance(spec.lr, keras.optimizers.schedules.LearningRateSchedule):
            check_schedule(spec.lr, f"group {spec.name!r} lr", num_steps)
        if spec.unfreeze_at == MANUAL:
            found.append(
                f"group {spec.name!r} has unfreeze_at {MANUAL!r} and nothing in a run unfreezes "
                "it: it stays frozen for the whole run."
            )
        elif isinstance(spec.unfreeze_at, int) and spec.unfreeze_at >= max(num_steps, 1):
            found.append(
                f"group {spec.name!r} unfreezes at step {spec.unfreeze_at}, but the run has "
                f"{num_steps} steps: it stays frozen for the whole run."
            )
    return found


def schedule_steps(schedule: Any, num_steps: int) -> list[int]:
    """The steps a schedule is checked at: 0, ``num_steps``, evenly spaced steps between, and a
    piecewise schedule's boundaries and their neighbours."""
    steps = {0, max(num_steps, 0)}
    count = min(SCHEDULE_SAMPLES, max(num_steps, 1))
    steps.update(round(i * num_steps / count) for i in range(count + 1))
    for boundary in getattr(schedule, "boundaries", []) or []:
        b = int(boundary)
        steps.update(s for s in (b - 1, b, b + 1) if 0 <= s <= num_steps)
    return sorted(steps)


def check_schedule(schedule: Callable[[Any], Any], where: str, num_steps: int) -> None:
    """Raise ValueError naming ``where`` and the step when ``schedule`` gives a negative or
    non-finite learning rate at a step of the run (a negative rate is gradient ascent)."""
    for step in schedule_steps(schedule, num_steps):
        with tf.init_scope():
            value = float(keras.ops.convert_to_numpy(schedule(step)))
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(
                f"{where} ({type(schedule).__name__}) must give a finite learning rate >= 0 at "
                f"every step of the run; at step {step} it gives {value!r}"
            )
