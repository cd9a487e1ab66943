"""Feeding a Task's datasets to a strategy.

Training: every worker builds the task's deterministic stream of GLOBAL batches (skipping the
batches a checkpoint already consumed) and keeps the slices of its own replicas: replica ``r`` of
``R`` gets rows ``[r*B/R, (r+1)*B/R)`` of each global batch. Each optimizer step therefore sees
exactly the same global batch under any strategy and number of workers, which is what makes
mirrored, multi-worker and single-device runs comparable (and resume exact).

Evaluation: the finite eval dataset is sharded by batch across workers and split across replicas;
the final partial batch is allowed (replicas without data get empty batches) and outputs are
gathered to the host, so every example is scored exactly once.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def _check_train_spec(spec: Any, global_batch_size: int) -> None:
    if not isinstance(spec, dict):
        raise TypeError(f"task.train_dataset must yield dict[str, Tensor]. Received spec: {spec}")
    for name, s in spec.items():
        if s.shape.rank == 0 or s.shape[0] != global_batch_size:
            raise ValueError(
                f"task.train_dataset feature {name!r} has shape {s.shape}; expected a leading "
                f"batch dimension of exactly {global_batch_size} (batch with drop_remainder=True)"
            )


def distribute_train_dataset(
    task: Any, strategy: tf.distribute.Strategy, global_batch_size: int, seed: int, skip: int
) -> Any:
    """The task's training batches from batch ``skip`` on, split per replica (module docstring)."""
    _check_train_spec(task.train_dataset(global_batch_size, seed).element_spec, global_batch_size)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        local = context.num_replicas_in_sync // context.num_input_pipelines
        start = context.input_pipeline_id * local * per_replica
        stop = start + local * per_replica

        def own_slices(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            out = {}
            for name, value in features.items():
                inner = value.shape[1:]
                shape = (
                    [local, per_replica, *inner]
                    if inner.is_fully_defined()
                    else tf.concat([[local, per_replica], tf.shape(value)[1:]], axis=0)
                )
                out[name] = tf.reshape(value[start:stop], shape)
            return out

        dataset = task.train_dataset(global_batch_size, seed).skip(skip)
        # [local, per_replica, ...] -> `local` consecutive elements, one per local replica.
        return dataset.map(own_slices).unbatch().prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


def distribute_eval_dataset(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy) -> Any:
    """A finite eval dataset (the task's ``eval_dataset`` or ``test_dataset``), sharded by batch
    over workers and split over replicas."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))
