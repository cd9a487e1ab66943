"""Every private Keras name the project relies on, in one place (Keras 3.15, TensorFlow backend).

`AdamMultilr` extends `keras.optimizers.Adam` where Keras has no public extension point: it needs
the optimizer's variable index (to find a replica component's group inside `update_step`), the raw
step counter and learning rate (as Keras evaluates schedules), Adam's slot lists (Keras' own
`update_step` reads them), and it overrides four private steps of `apply` (`OVERRIDDEN_HOOKS`).
Outside this module no code of `capreolus_opt` reads or writes a private Keras attribute
(``tests/optimizer/test_keras_compat.py`` scans the package), so a Keras upgrade breaks here, in
the test of this module, first.

Importing this module checks ``keras.__version__`` against `TESTED` (`check_version`: another
major version raises ImportError, another 3.x minor release warns once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from capreolus_opt.framework_versions import check_version

# (major, minor) releases this module's names were checked on (pyproject pins keras to 3.15.x).
TESTED: tuple[tuple[int, int], ...] = ((3, 15),)

check_version("Keras", keras.__version__, TESTED)

# Private methods of `keras.optimizers.Optimizer` that AdamMultilr overrides (and, for some, calls
# through `super()`), with the parameters (after `self`) it overrides them with. Python can only
# override a method by its name, so these names also appear in the optimizer's mixins; the test
# checks that each still exists on `keras.optimizers.Optimizer` with these parameters, and that no
# other project method shadows a Keras one.
OVERRIDDEN_HOOKS: dict[str, tuple[str, ...]] = {
    # apply() -> ... -> _backend_apply_gradients: the optimizer defers clipping inside it.
    "_backend_apply_gradients": ("grads", "trainable_variables"),
    # called by apply() before the update; AdamMultilr clips after the cross-replica sum instead.
    "_clip_gradients": ("grads",),
    # Keras decays with the BASE lr here; AdamMultilr decays per variable with its group's lr.
    "_apply_weight_decay": ("variables",),
    # The TF backend's all-reduce + per-variable `distribution.extended.update(update_step)`.
    "_backend_update_step": ("grads", "trainable_variables", "learning_rate"),
}

# Adam's per-variable slot lists, read by `keras.optimizers.Adam.update_step` (index =
# `variable_index`); AdamMultilr's `build` creates them itself (none for frozen variables).
ADAM_SLOTS: dict[str, str] = {
    "momentum": "_momentums",
    "velocity": "_velocities",
    "velocity_hat": "_velocity_hats",  # amsgrad only
}
# Per-variable state of the base optimizer: EMA averages (use_ema) and gradient accumulators
# (gradient_accumulation_steps); present only when the option is on.
BASE_PER_VARIABLE: dict[str, str] = {
    "average": "_model_variables_moving_average",
    "accum": "_accumulated_gradients",
}
# The attribute under which a Keras optimizer tracks its variable list: the child node's name in a
# `tf.train.Checkpoint` object graph (children named "0", "1", ... in `optimizer.variables` order).
VARIABLES_CHILD = "_variables"

# Every private attribute of a Keras optimizer that the functions below read or write.
PRIVATE_ATTRIBUTES: tuple[str, ...] = (
    "_var_key",
    "_get_variable_index",
    "_iterations",
    "_learning_rate",
    "_trainable_variables",
    "_use_weight_decay",
    "_all_reduce_sum_gradients",
    "_distribution_strategy",
    VARIABLES_CHILD,
    *ADAM_SLOTS.values(),
    *BASE_PER_VARIABLE.values(),
)


def var_key(optimizer: Any, variable: Any) -> Any:
    """Keras' stable key of `variable` (the same for a MirroredVariable and its components)."""
    return optimizer._var_key(variable)


def variable_index(optimizer: Any, variable: Any) -> int:
    """Position of `variable` (or a replica component of it) in the list the optimizer built on."""
    return optimizer._get_variable_index(variable)


def built_variables(optimizer: Any) -> list[Any]:
    """The trainable variables the optimizer was built on, in build order."""
    return optimizer._trainable_variables


def step_counter(optimizer: Any) -> Any:
    """The raw step counter variable: micro-steps with ``gradient_accumulation_steps`` (the
    count Keras calls learning-rate schedules with; public `iterations` divides it)."""
    return optimizer._iterations


def raw_learning_rate(optimizer: Any) -> Any:
    """The learning rate as held: a variable (float lr), a schedule, or a plain callable
    (public `learning_rate` evaluates it instead)."""
    return optimizer._learning_rate


def uses_weight_decay(optimizer: Any, variable: Any) -> bool:
    """Keras' answer to "does weight decay apply to `variable`" (exclude_from_weight_decay)."""
    return optimizer._use_weight_decay(variable)


def all_reduce_sum_gradients(optimizer: Any, grads_and_vars: Sequence[tuple]) -> list[tuple]:
    """The TF backend's cross-replica sum of `(gradient, variable)` pairs, order kept."""
    return optimizer._all_reduce_sum_gradients(grads_and_vars)


def distribution_strategy(optimizer: Any) -> Any:
    """The `tf.distribute.Strategy` the optimizer was created under."""
    return optimizer._distribution_strategy


def adam_slot(optimizer: Any, kind: str, index: int) -> Any:
    """Adam slot `kind` (a key of `ADAM_SLOTS`) of the variable at `index` (None: no slot)."""
    return getattr(optimizer, ADAM_SLOTS[kind])[index]


def set_adam_slots(optimizer: Any, slots: dict[str, list[Any]]) -> None:
    """Install Adam's slot lists, ``{kind: [slot or None per built variable]}``."""
    for kind, values in slots.items():
        setattr(optimizer, ADAM_SLOTS[kind], values)


def per_variable_state(optimizer: Any) -> dict[str, list[Any]]:
    """``{kind: [variable or None per built variable]}`` for every per-variable state list the
    optimizer has: Adam's slots, then the base optimizer's EMA averages and accumulators."""
    out = {}
    for kind, attribute in (ADAM_SLOTS | BASE_PER_VARIABLE).items():
        values = getattr(optimizer, attribute, None)
        if values:
            out[kind] = values
    return out
