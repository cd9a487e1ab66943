"""The traced train and eval steps: ``tf.function`` around ``strategy.run`` (the orbit idiom).

``build_step_functions`` returns three ``tf.function``s, each traced once:

- ``train(iterator) -> losses[steps_per_loop]``: ``steps_per_loop`` optimizer steps in one call;
- ``train_with_diagnostics(iterator) -> (losses, {group/...: scalar})``: the same, with the last
  step also computing the per-group diagnostics (``diagnostics.py``). Keeping it a separate
  function (rather than a ``tf.cond``) keeps the extra all-reduce and the parameter copies out of
  the ordinary step's graph;
- ``evaluate(iterator) -> {name: Tensor}``: one eval batch on every replica, outputs gathered
  across replicas (and workers) to the host.

Python side effects (sinks, NumPy, logging) stay outside the traced code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

from capreolus_opt.training import diagnostics as diag


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

    The optimizer must already be built on ``model.trainable_variables`` inside
    ``strategy.scope()`` (a Keras optimizer built lazily inside the first ``tf.function`` call
    fails under ``MirroredStrategy``, DESIGN.md §3 (c)).
    """
    variables: Sequence[keras.Variable] = list(model.trainable_variables)
    counts = {"train": 0, "train_with_diagnostics": 0, "evaluate": 0}

    def loss_and_grads(features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, list[Any]]:
        with tf.GradientTape() as tape:
            per_example = task.per_example_loss(model, features, training=True)
            # Sum this replica's examples and divide by the GLOBAL batch size, not the replica's:
            # the optimizer SUMS gradients over replicas (all-reduce), so the applied gradient is
            # that of the mean loss over the whole global batch, whatever the number of replicas.
            loss = tf.reduce_sum(tf.cast(per_example, tf.float32)) / float(global_batch_size)
        return loss, tape.gradient(loss, variables)

    def replica_step(features: dict[str, tf.Tensor]) -> tf.Tensor:
        loss, grads = loss_and_grads(features)
        optimizer.apply(grads, variables)
        return loss

    def replica_step_with_diagnostics(
        features: dict[str, tf.Tensor],
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        loss, grads = loss_and_grads(features)
        rates = diag.group_learning_rates(optimizer, group_index)
        reduced = diag.all_reduced_gradients(grads, variables)
        before = diag.snapshot(variables)
        optimizer.apply(grads, variables)
        return loss, diag.group_diagnostics(group_index, rates, reduced, before, variables)

    if jit_compile:
        replica_step = tf.function(replica_step, jit_compile=True)
        replica_step_with_diagnostics = tf.function(replica_step_with_diagnostics, jit_compile=True)

    def distributed_step(iterator: Any) -> tf.Tensor:
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def run_plain_steps(iterator: Any, n: int) -> tf.TensorArray:
        losses = tf.TensorArray(tf.float32, size=steps_per_loop)
        if n == 1:
            return losses.write(0, distributed_step(iterator))
        for i in tf.range(n):
            losses = losses.write(i, distributed_step(iterator))
        return losses

    @tf.function
    def train(iterator: Any) -> tf.Tensor:
        counts["train"] += 1
        return run_plain_steps(iterator, steps_per_loop).stack()

    @tf.function
    def train_with_diagnostics(iterator: Any) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        counts["train_with_diagnostics"] += 1
        if steps_per_loop > 1:
            losses = run_plain_steps(iterator, steps_per_loop - 1)
        else:
            losses = tf.TensorArray(tf.float32, size=1)
        loss, values = strategy.run(replica_step_with_diagnostics, args=(next(iterator),))
        losses = losses.write(
            steps_per_loop - 1, strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        )
        # Every replica computed the same values (from all-reduced gradients and mirrored
        # parameters): take this worker's first copy instead of paying for another collective.
        first = {k: strategy.experimental_local_results(v)[0] for k, v in values.items()}
        return losses.stack(), first

    def replica_eval(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return dict(task.eval_outputs(model, features))

    @tf.function
    def evaluate(iterator: Any) -> dict[str, tf.Tensor]:
        counts["evaluate"] += 1
        outputs = strategy.run(replica_eval, args=(next(iterator),))
        return {k: strategy.gather(v, axis=0) for k, v in outputs.items()}

    return StepFunctions(train, train_with_diagnostics, evaluate, counts)
