"""How AdamMultilr's `apply` runs: one compiled step when eager, a lazy build under a strategy,
and clipping deferred until the gradients are summed across replicas.

A mixin so that `adam_multilr.py` holds the optimizer's maths; it relies on `build`, `fused`,
`keras.optimizers.Adam.apply` and two of Keras' private hooks (`keras_compat.OVERRIDDEN_HOOKS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from capreolus_opt.optimizer import keras_compat
from capreolus_opt.optimizer.groups import LearningRateSchedule


class EagerSteps:
    """Internal tf.functions for eager `apply`, one per (variable list, None-gradient mask).

    A plain object so that neither Keras' nor TF's attribute tracking wraps the dict."""

    def __init__(self) -> None:
        self.functions: dict[tuple, Any] = {}


class ClipDeferred:
    """Whether `apply` is running (then `_clip_gradients` defers); untracked, like `EagerSteps`."""

    active = False


class ApplyMixin:
    """`apply`, its eager compilation, the lazy build under `strategy.run`, deferred clipping."""

    # Pure graph-building Python (no tensor-dependent control flow): AutoGraph has nothing to do.
    @tf.autograph.experimental.do_not_convert
    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        """Densify sparse gradients, then run Keras' `apply` (compiled once when eager)."""
        # Densify first: exact for duplicate indices, and `loss_scale_factor` cannot divide an
        # IndexedSlices (both stock Keras 3.15 bugs, docs/STACK_FACTS.md §3 (a), (b)).
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if not self._eager_compilable():
            if not self.built and trainable_variables is not None and self._in_replica_fn():
                self._build_from_replica(list(trainable_variables))
            return super().apply(grads, trainable_variables)
        if trainable_variables is None:
            trainable_variables = keras_compat.built_variables(self)
        variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(variables)
        keys = tuple(keras_compat.var_key(self, v) for v in variables)
        key = (keys, tuple(g is None for g in grads))
        step = self._eager_steps.functions.get(key)
        if step is None:
            mask = key[1]

            def step(present: list[tf.Tensor]) -> None:
                full = iter(present)
                keras.optimizers.Adam.apply(
                    self, [None if none else next(full) for none in mask], variables
                )

            step = tf.function(step, autograph=False)
            self._eager_steps.functions[key] = step
        step([g for g in grads if g is not None])

    def _eager_compilable(self) -> bool:
        # A plain callable lr may read Python state that a traced function would freeze.
        learning_rate = keras_compat.raw_learning_rate(self)
        plain_callable = callable(learning_rate) and not isinstance(
            learning_rate, LearningRateSchedule | keras.Variable
        )
        # fused=False promises Keras' exact op-by-op arithmetic, so it also runs eagerly op by op
        # (grappler may reassociate `variable * wd * lr` inside a function: 1 ulp).
        return (
            self.fused
            and tf.executing_eagerly()
            and not tf.distribute.has_strategy()
            and not plain_callable
        )

    @staticmethod
    def _in_replica_fn() -> bool:
        """Tracing inside `strategy.run` of a non-default strategy."""
        return (
            tf.distribute.has_strategy()
            and not tf.distribute.in_cross_replica_context()
            and not tf.executing_eagerly()
        )

    def _build_from_replica(self, variables: list[Any]) -> None:
        """Build lazily from inside a replica function: in a merge call, lifted out of the graph.

        Stock Keras creates the slots inside the traced replica function and fails with "You must
        feed a value for placeholder" (docs/STACK_FACTS.md §3 (c)). Here the first `apply` under
        `strategy.run` builds in cross-replica context under `tf.init_scope()` (eagerly, as
        mirrored variables); this needs the trainable variables passed to `apply`.
        """

        def build(strategy: tf.distribute.Strategy, variables: list[Any]) -> None:
            with tf.init_scope(), strategy.scope(), keras.name_scope(self.name, caller=self):
                self.build(variables)

        tf.distribute.get_replica_context().merge_call(build, args=(variables,))

    def _backend_apply_gradients(self, grads: list[Any], trainable_variables: list[Any]) -> None:
        # Inside `apply`, clipping waits for the cross-replica sum (`_backend_update_step`).
        self._clip_deferred.active = True
        try:
            super()._backend_apply_gradients(grads, trainable_variables)
        finally:
            self._clip_deferred.active = False

    def _clip_gradients(self, grads: list[Any]) -> list[Any]:
        """Keras' clipping when called directly; a no-op inside `apply` (clipped after the sum)."""
        if self._clip_deferred.active:
            return grads
        return super()._clip_gradients(grads)
