"""Per-group training diagnostics computed inside the traced step.

For every optimizer group ``g`` (``AdamMultilr.group_names``; a plain Keras optimizer is one group
named ``"default"``), at a diagnostics step:

- ``group/g/lr``: the group's learning rate used by this step's update (schedule evaluated at the
  optimizer's iteration count before the update; frozen groups report 0);
- ``group/g/grad_norm``: ``sqrt(sum_v ||G_v||^2)`` where ``G_v`` is the gradient summed over all
  replicas (the gradient the optimizer applies, i.e. of the mean loss over the global batch);
- ``group/g/update_norm``: ``sqrt(sum_v ||p_v(after) - p_v(before)||^2)``, the change actually
  applied by the step (Adam's bias correction, clipping and weight decay included);
- ``group/g/param_norm``: ``sqrt(sum_v ||p_v(after)||^2)``.

The sums run over the group's variables; a group without variables reports 0 for all norms.
Variables are resolved to groups once, in Python, before tracing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from capreolus_opt.records.schema import MetricName

DEFAULT_GROUP = "default"


@dataclass(frozen=True)
class GroupIndex:
    """Which positions of the trainable-variable list belong to each optimizer group."""

    names: tuple[str, ...]
    members: Mapping[str, tuple[int, ...]]


def resolve_group_index(optimizer: Any, variables: Sequence[keras.Variable]) -> GroupIndex:
    """Map each trainable variable to its optimizer group.

    Uses ``optimizer.variables_by_group()`` when the optimizer has groups (AdamMultilr); any
    other optimizer is a single ``"default"`` group. Variables of a group that are not in
    ``variables`` (not trainable) are ignored: they receive no gradient and no update.
    """
    position = {id(v): i for i, v in enumerate(variables)}
    if not hasattr(optimizer, "variables_by_group"):
        return GroupIndex((DEFAULT_GROUP,), {DEFAULT_GROUP: tuple(range(len(variables)))})
    by_group = optimizer.variables_by_group()
    members = {
        name: tuple(position[id(v)] for v in group_vars if id(v) in position)
        for name, group_vars in by_group.items()
    }
    names = tuple(getattr(optimizer, "group_names", list(by_group)))
    return GroupIndex(names, {n: members.get(n, ()) for n in names})


def group_learning_rates(optimizer: Any, index: GroupIndex) -> dict[str, tf.Tensor]:
    """The current lr of every group as float32 scalars (call before ``apply`` in the step)."""
    if hasattr(optimizer, "group_learning_rates"):
        rates = optimizer.group_learning_rates()
    else:
        rates = {DEFAULT_GROUP: optimizer.learning_rate}
    return {g: tf.cast(tf.convert_to_tensor(rates[g]), tf.float32) for g in index.names}


def _dense(t: tf.Tensor | tf.IndexedSlices | None, like: tf.Tensor) -> tf.Tensor:
    if t is None:
        return tf.zeros_like(like)
    # IndexedSlices -> dense sums duplicate indices, i.e. the gradient the optimizer applies.
    return tf.convert_to_tensor(t)


def _group_norm(tensors: Sequence[tf.Tensor], positions: Sequence[int]) -> tf.Tensor:
    total = tf.constant(0.0, tf.float32)
    for i in positions:
        total += tf.reduce_sum(tf.square(tf.cast(tensors[i], tf.float32)))
    return tf.sqrt(total)


def snapshot(variables: Sequence[keras.Variable]) -> list[tf.Tensor]:
    """Read the current values (the 'before' of ``update_norm``)."""
    return [tf.identity(tf.convert_to_tensor(v)) for v in variables]


def all_reduced_gradients(
    grads: Sequence[tf.Tensor | tf.IndexedSlices | None], variables: Sequence[keras.Variable]
) -> list[tf.Tensor]:
    """Sum of the replicas' gradients (identity outside a multi-replica context).

    The optimizer all-reduces the gradients again for its update; this second all-reduce runs
    only at diagnostics steps, so its cost is amortised over ``metrics_every`` steps.
    """
    dense = [_dense(g, tf.convert_to_tensor(v)) for g, v in zip(grads, variables, strict=True)]
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1 or not dense:
        return dense
    return context.all_reduce(tf.distribute.ReduceOp.SUM, dense)


def group_diagnostics(
    index: GroupIndex,
    learning_rates: Mapping[str, tf.Tensor],
    reduced_grads: Sequence[tf.Tensor],
    before: Sequence[tf.Tensor],
    variables: Sequence[keras.Variable],
) -> dict[str, tf.Tensor]:
    """The ``group/<g>/...`` metrics from values read before and after the update."""
    after = [tf.convert_to_tensor(v) for v in variables]
    updates = [a - b for a, b in zip(after, before, strict=True)]
    out: dict[str, tf.Tensor] = {}
    for g in index.names:
        pos = index.members[g]
        out[MetricName.group(g, "lr")] = learning_rates[g]
        out[MetricName.group(g, "grad_norm")] = _group_norm(reduced_grads, pos)
        out[MetricName.group(g, "update_norm")] = _group_norm(updates, pos)
        out[MetricName.group(g, "param_norm")] = _group_norm(after, pos)
    return out
