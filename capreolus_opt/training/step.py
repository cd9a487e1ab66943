"""The traced train and eval steps: ``tf.function`` around ``strategy.run`` (the orbit idiom).

``build_step_functions`` returns three ``tf.function``s, each traced once:

- ``train(iterator, stop_vote) -> (losses[steps_per_loop], stop_votes)``: ``steps_per_loop``
  optimizer steps in one call;
- ``train_with_diagnostics(iterator, stop_vote) -> (losses, stop_votes, {group/...: scalar})``:
  the same, with the last step also computing the per-group diagnostics (``diagnostics.py``).
  Keeping it a separate function (rather than a ``tf.cond``) keeps the extra all-reduce and the
  parameter copies out of the ordinary step's graph;
- ``evaluate(iterator) -> {name: Tensor}``: one eval batch on every replica, outputs gathered
  across replicas (and workers) to the host.

``stop_vote`` (a float scalar: 1.0 once this worker was sent SIGINT/SIGTERM) rides in the
all-reduce that sums the loss, so ``stop_votes > 0`` tells every worker of a multi-worker job,
after the same step and at no extra collective, that one of them must stop: they then all take
part in the final checkpoint (a save is collective) instead of the others waiting forever in the
next step's all-reduce.

With mixed precision (``precision.py``) the loss is scaled by ``optimizer.scale_loss`` before
the gradient (a ``LossScaleOptimizer`` unscales in ``apply``; so does a plain optimizer's
``loss_scale_factor``), the diagnostics report unscaled gradients and the inner optimizer's
group rates, and with several replicas an overflow on any replica skips the step on all of them
(Keras' ``LossScaleOptimizer`` looks at one replica's gradients only, so the others would apply
NaN after the all-reduce, or, without merge_call under XLA, leave the all-reduce hanging).

Python side effects (sinks, NumPy, logging) stay outside the traced code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from capreolus_opt.training import diagnostics as diag
from capreolus_opt.training import precision


@dataclass
class StepFunctions:
    train: Any
    train_with_diagnostics: Any
    evaluate: Any
    #: how many times each function was traced (a retrace after the first call is a bug)
    trace_counts: dict[str, int] = field(default_factory=dict)


def build_step_functions(
    *,
    task: Any,
    model: keras.Model,
    optimizer: Any,
    strategy: tf.distribute.Strategy,
    global_batch_size: int,
    group_index: diag.GroupIndex,
    steps_per_loop: int = 1,
    jit_compile: bool = False,
) -> StepFunctions:
    """Build the traced steps for ``task`` (see the module docstring).

    ``train()`` builds the optimizer (a ``LossScaleOptimizer`` with its inner one) on
    ``model.trainable_variables`` inside ``strategy.scope()`` before this traces anything, so
    that no variable is created inside a traced step.
    """
    variables: Sequence[keras.Variable] = list(model.trainable_variables)
    counts = {"train": 0, "train_with_diagnostics": 0, "evaluate": 0}
    groups = precision.inner(optimizer)  # owns the group rates under a LossScaleOptimizer
    dynamic = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def loss_and_grads(features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, list[Any]]:
        with tf.GradientTape() as tape:
            per_example = task.per_example_loss(model, features, training=True)
            # Sum this replica's examples and divide by the GLOBAL batch size, not the replica's:
            # the optimizer SUMS gradients over replicas (all-reduce), so the applied gradient is
            # that of the mean loss over the whole global batch, whatever the number of replicas.
            loss = tf.reduce_sum(tf.cast(per_example, tf.float32)) / float(global_batch_size)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        return loss, (_skip_together(grads) if dynamic else grads)

    def replica_step(features: dict[str, tf.Tensor], stop_vote: tf.Tensor) -> tf.Tensor:
        loss, grads = loss_and_grads(features)
        optimizer.apply(grads, variables)
        return tf.stack([loss, stop_vote])

    def replica_step_with_diagnostics(
        features: dict[str, tf.Tensor], stop_vote: tf.Tensor
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        loss, grads = loss_and_grads(features)
        rates = diag.group_learning_rates(groups, group_index)
        reduced = diag.all_reduced_gradients(grads, variables)
        scale = precision.gradient_scale(optimizer)  # before apply changes the dynamic scale
        if scale is not None:
            reduced = [g / scale for g in reduced]
        before = diag.snapshot(variables)
        optimizer.apply(grads, variables)
        values = diag.group_diagnostics(group_index, rates, reduced, before, variables)
        return tf.stack([loss, stop_vote]), values

    if jit_compile:
        replica_step = tf.function(replica_step, jit_compile=True)
        replica_step_with_diagnostics = tf.function(replica_step_with_diagnostics, jit_compile=True)

    def summed(per_replica: Any) -> tf.Tensor:
        """[global loss, stop votes]: one all-reduce for both (see the module docstring)."""
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def distributed_step(iterator: Any, stop_vote: tf.Tensor) -> tf.Tensor:
        return summed(strategy.run(replica_step, args=(next(iterator), stop_vote)))

    def run_plain_steps(iterator: Any, stop_vote: tf.Tensor, n: int) -> tf.TensorArray:
        totals = tf.TensorArray(tf.float32, size=steps_per_loop, element_shape=(2,))
        if n == 1:
            return totals.write(0, distributed_step(iterator, stop_vote))
        for i in tf.range(n):
            totals = totals.write(i, distributed_step(iterator, stop_vote))
        return totals

    def losses_and_votes(totals: tf.TensorArray) -> tuple[tf.Tensor, tf.Tensor]:
        stacked = totals.stack()
        return stacked[:, 0], tf.reduce_max(stacked[:, 1])

    @tf.function
    def train(iterator: Any, stop_vote: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        counts["train"] += 1
        return losses_and_votes(run_plain_steps(iterator, stop_vote, steps_per_loop))

    @tf.function
    def train_with_diagnostics(
        iterator: Any, stop_vote: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, dict[str, tf.Tensor]]:
        counts["train_with_diagnostics"] += 1
        if steps_per_loop > 1:
            totals = run_plain_steps(iterator, stop_vote, steps_per_loop - 1)
        else:
            totals = tf.TensorArray(tf.float32, size=1, element_shape=(2,))
        last, values = strategy.run(replica_step_with_diagnostics, args=(next(iterator), stop_vote))
        totals = totals.write(steps_per_loop - 1, summed(last))
        # Every replica computed the same values (from all-reduced gradients and mirrored
        # parameters): take this worker's first copy instead of paying for another collective.
        first = {k: strategy.experimental_local_results(v)[0] for k, v in values.items()}
        return (*losses_and_votes(totals), first)

    def replica_eval(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return dict(task.eval_outputs(model, features))

    @tf.function
    def evaluate(iterator: Any) -> dict[str, tf.Tensor]:
        counts["evaluate"] += 1
        outputs = strategy.run(replica_eval, args=(next(iterator),))
        return {k: strategy.gather(v, axis=0) for k, v in outputs.items()}

    return StepFunctions(train, train_with_diagnostics, evaluate, counts)


def _skip_together(grads: list[Any]) -> list[Any]:
    """NaN on every replica when any replica's gradients overflowed (see the module docstring):
    the loss-scale optimizer then skips the step everywhere and halves the scale."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return grads
    present = [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads if g is not None]
    local_bad = tf.cast(
        tf.logical_not(tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in present])),
        tf.float32,
    )
    factor = tf.where(context.all_reduce(tf.distribute.ReduceOp.SUM, local_bad) > 0, np.nan, 1.0)

    def poison(g: Any) -> Any:
        if isinstance(g, tf.IndexedSlices):
            return tf.IndexedSlices(g.values * tf.cast(factor, g.dtype), g.indices, g.dense_shape)
        return g * tf.cast(factor, g.dtype)

    return [None if g is None else poison(g) for g in grads]
