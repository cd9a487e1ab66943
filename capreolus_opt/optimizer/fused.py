"""The fused Adam update: one kernel per variable, outside XLA.

Keras' `Adam.update_step` issues about a dozen elementwise ops per variable, each a full pass over
memory. Two kernels compute the same epsilon-hat formula in one op:

- on CPU variables, our one-pass custom op (`capreolus_opt.optimizer.kernel`): one read of
  param/grad/m/v and one write of param/m/v per element (28 B per float32 parameter, 36 with
  AMSGrad), with decoupled weight decay folded in; bit-for-bit equal to TF's kernel;
- everywhere else, and when the op cannot be built or loaded (no compiler, read-only cache,
  ``CAPREOLUS_OPT_ADAM_KERNEL=tf``): TF's `ResourceApplyAdam` / `ResourceApplyAdamWithAmsgrad`
  (three passes per block, ~40 B/param; AMSGrad four whole-tensor passes, ~52 B/param).

Both are used only outside XLA: under `jit_compile=True` XLA fuses the `keras.ops` path itself,
and neither `ResourceApplyAdamWithAmsgrad` nor our op has an XLA kernel. The choice is made in
Python while the step is traced (`tf_compat.in_xla_context`), never inside the graph.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from capreolus_opt.optimizer import kernel

# Dtypes whose CPU/GPU kernels exist and compute in the variable's own dtype, like Keras does.
# float16/bfloat16 variables stay on the keras.ops path (Eigen's half kernels accumulate
# differently from Keras' op-by-op half arithmetic).
FUSED_DTYPES = frozenset({tf.float32, tf.float64})


def _raw(variable: Any) -> Any:
    # keras.Variable -> tf.Variable; a DistributedVariable inside `strategy.extended.update` is
    # the component on the current device.
    return (
        getattr(variable, "value", variable) if not isinstance(variable, tf.Variable) else variable
    )


def _handle(variable: Any) -> tf.Tensor:
    return _raw(variable).handle


def on_cpu(variable: Any) -> bool:
    """Whether the variable lives on a CPU device (the one-pass op has only a CPU kernel)."""
    device = getattr(_raw(variable), "device", "") or ""
    return tf.DeviceSpec.from_string(device).device_type in (None, "CPU")


def _onepass_ops(variable: Any) -> Any:
    return kernel.onepass_ops() if on_cpu(variable) else None


def fusable(variable: Any, gradient: Any) -> bool:
    """Whether `variable` can take the fused kernel (resource variable, supported dtype)."""
    raw = variable if isinstance(variable, tf.Variable) else getattr(variable, "value", None)
    return (
        isinstance(raw, tf.Variable)
        and tf.as_dtype(raw.dtype) in FUSED_DTYPES
        and not isinstance(gradient, tf.IndexedSlices)
    )


def step_scalars(
    learning_rate: Any, local_step: Any, beta_1: float, beta_2: float, epsilon: float, dtype: Any
) -> tuple[tf.Tensor, ...]:
    """`(lr, beta_1**t, beta_2**t, beta_1, beta_2, epsilon)` in `dtype`, as Keras computes them."""
    step = tf.cast(local_step, dtype)
    return (
        tf.cast(learning_rate, dtype),
        tf.pow(tf.cast(beta_1, dtype), step),
        tf.pow(tf.cast(beta_2, dtype), step),
        tf.cast(beta_1, dtype),
        tf.cast(beta_2, dtype),
        tf.cast(epsilon, dtype),
    )


def fused_adam_update(
    variable: Any,
    gradient: tf.Tensor,
    m: Any,
    v: Any,
    v_hat: Any | None,
    scalars: tuple,
    weight_decay: Any = None,
) -> tf.Operation:
    """One fused Adam (AMSGrad when `v_hat` is given) step; `scalars` from `step_scalars`.

    Kernel maths (the epsilon-hat form of Keras' `Adam.update_step`), after the decoupled weight
    decay ``variable -= variable * weight_decay * lr`` when `weight_decay` is given (Keras' own
    expression; a float 0.0 or None skips it):
    ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``,
    ``m += (g - m) * (1 - beta_1)``, ``v += (g*g - v) * (1 - beta_2)``,
    (AMSGrad: ``v_hat = max(v_hat, v)``, used in place of ``v``),
    ``variable -= alpha * m / (sqrt(v) + epsilon)``.
    The kernel rounds ``1 - beta`` from the dtype's beta (Keras rounds the Python float), so the
    two paths differ by a few 1e-6 relative in the update, the fused one being the closer to a
    float64 reference.
    """
    lr = scalars[0]
    if gradient.dtype != variable.dtype:
        gradient = tf.cast(gradient, variable.dtype)
    if isinstance(weight_decay, int | float) and not weight_decay:
        weight_decay = None
    ops = _onepass_ops(variable)
    if ops is not None:
        return _onepass_update(ops, variable, gradient, m, v, v_hat, scalars, weight_decay)
    if weight_decay is not None:
        wd = tf.cast(weight_decay, variable.dtype)
        variable.assign_sub(variable * wd * lr)
    kwargs = _adam_inputs(variable, gradient, m, v, scalars, use_locking=False)
    if v_hat is None:
        return tf.raw_ops.ResourceApplyAdam(**kwargs)
    return tf.raw_ops.ResourceApplyAdamWithAmsgrad(vhat=_handle(v_hat), **kwargs)


def _adam_inputs(
    variable: Any, gradient: tf.Tensor, m: Any, v: Any, scalars: tuple, **extra: Any
) -> dict[str, Any]:
    """The inputs both Adam kernels (TF's and the one-pass op) take, plus ``extra``."""
    lr, beta_1_power, beta_2_power, beta_1, beta_2, epsilon = scalars
    return dict(
        var=_handle(variable),
        m=_handle(m),
        v=_handle(v),
        beta1_power=beta_1_power,
        beta2_power=beta_2_power,
        lr=lr,
        beta1=beta_1,
        beta2=beta_2,
        epsilon=epsilon,
        grad=gradient,
        **extra,
    )


def _onepass_update(
    ops: Any,
    variable: Any,
    gradient: tf.Tensor,
    m: Any,
    v: Any,
    v_hat: Any | None,
    scalars: tuple,
    weight_decay: Any,
) -> tf.Operation:
    dtype = scalars[0].dtype
    decay = tf.zeros([], dtype) if weight_decay is None else tf.cast(weight_decay, dtype)
    kwargs = _adam_inputs(variable, gradient, m, v, scalars, weight_decay=decay)
    if v_hat is None:
        return ops.capreolus_one_pass_adam(**kwargs)
    return ops.capreolus_one_pass_adam_amsgrad(vhat=_handle(v_hat), **kwargs)
