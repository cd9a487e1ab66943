"""Mixed precision for ``train(mixed_precision=...)``: the Keras policy and loss scaling.

- ``"mixed_bfloat16"``: layers compute in bfloat16, variables stay float32 (bfloat16 has
  float32's exponent range, so no loss scaling); the TPU's native format, and Ampere+ GPUs'.
- ``"mixed_float16"``: layers compute in float16, variables stay float32, and the optimizer is
  wrapped in ``keras.optimizers.LossScaleOptimizer`` (dynamic scale, starting at 2**15: halved
  and the step skipped when a gradient overflows, doubled after 2000 finite steps) so small
  gradients do not underflow float16. Volta+ GPUs.
- ``"auto"``: ``"mixed_float16"`` when TensorFlow sees a GPU, else ``None`` (a CPU computes
  float16 slower than float32); what the BERT fine-tuning configs use.
- ``None``: the global policy is left as it is (float32 unless the caller set another).

The policy is set around ``train()`` only (the model is built inside) and the previous one comes
back afterwards, also on errors, so one run's policy never leaks into the next run of a process.
Optimizer state (moments, group learning rates, the loss scale) is always float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import keras
import tensorflow as tf

POLICIES = ("mixed_float16", "mixed_bfloat16")
AUTO = "auto"


def check_policy(name: Any) -> None:
    """Raises ValueError naming ``name`` unless it is None, ``"auto"`` or one of ``POLICIES``."""
    if name is not None and name != AUTO and name not in POLICIES:
        raise ValueError(
            f"mixed_precision must be one of {[*POLICIES, AUTO]} or None. Received: {name!r}"
        )


def resolve_policy(name: str | None) -> str | None:
    """``name``, with ``"auto"`` replaced by ``"mixed_float16"`` on a GPU machine, else None."""
    check_policy(name)
    if name != AUTO:
        return name
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else None


@contextmanager
def policy_scope(name: str | None) -> Iterator[str]:
    """Set the global Keras dtype policy ``name`` (None: keep the current one; ``"auto"``:
    ``resolve_policy``) for the block;
    yields the policy in effect and restores the previous one on exit."""
    name = resolve_policy(name)
    previous = keras.config.dtype_policy()
    if name is not None:
        keras.config.set_dtype_policy(name)
    try:
        yield keras.config.dtype_policy().name
    finally:
        keras.config.set_dtype_policy(previous)


def needs_loss_scaling(policy: str) -> bool:
    return keras.DTypePolicy(policy).compute_dtype == "float16"


def wrap_for_loss_scaling(optimizer: keras.optimizers.Optimizer) -> Any:
    """``LossScaleOptimizer(optimizer)``; create it inside ``strategy.scope()``."""
    return keras.optimizers.LossScaleOptimizer(optimizer)


def inner(optimizer: Any) -> Any:
    """The optimizer that owns the groups (AdamMultilr) under a LossScaleOptimizer."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def gradient_scale(optimizer: Any) -> tf.Tensor | None:
    """What the step's gradients are multiplied by (``optimizer.scale_loss``), or None.

    Inside the traced step, read before ``apply`` (which may change the dynamic scale)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.convert_to_tensor(optimizer.dynamic_scale)
    factor = getattr(optimizer, "loss_scale_factor", None)
    return None if factor is None else tf.constant(float(factor))


def loss_scale_state(optimizer: Any) -> dict[str, Any] | None:
    """The loss scale's own variables, to checkpoint beside the inner optimizer (not the
    wrapper itself: it would re-home the model's variables under its own checkpoint keys)."""
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None
    return {
        "loss_scale": optimizer.dynamic_scale.value,
        "loss_scale_steps": optimizer.step_counter.value,
    }
