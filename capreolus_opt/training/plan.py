"""The arguments that shape ``train()``'s loop, and their checks (messages name the value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from capreolus_opt.training.precision import check_policy


def check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be an int {bound}. Received: {value!r}")


@dataclass(frozen=True)
class Plan:
    """The arguments that shape the loop (validated by ``_validate``)."""

    num_steps: int
    global_batch_size: int
    seed: int
    steps_per_loop: int
    metrics_every: int
    eval_every: int
    checkpoint_every: int
    max_checkpoints_to_keep: int
    jit_compile: bool
    mixed_precision: str | None

    @property
    def intervals(self) -> dict[str, int]:
        return {
            "metrics_every": self.metrics_every,
            "eval_every": self.eval_every,
            "checkpoint_every": self.checkpoint_every,
        }


def validate(plan: Plan, strategy: Any) -> None:
    check_positive("num_steps", plan.num_steps, allow_zero=True)
    check_positive("global_batch_size", plan.global_batch_size)
    check_positive("steps_per_loop", plan.steps_per_loop)
    replicas = strategy.num_replicas_in_sync
    if plan.global_batch_size % replicas:
        raise ValueError(
            f"global_batch_size={plan.global_batch_size} is not divisible by the {replicas} "
            "replicas of the strategy"
        )
    if plan.jit_compile and replicas > 1 and not xla_compiles_replicas(strategy):
        # XLA cannot compile a replica function that reads mirrored variables on logical CPU
        # devices ("Trying to access resource .../replica_1 ... from device CPU:0", TF 2.21) nor
        # the optimizer's merge_call, which MirroredStrategy drops under XLA only on GPUs.
        raise ValueError(
            f"jit_compile=True with several replicas needs MirroredStrategy over GPUs; "
            f"{type(strategy).__name__} has {replicas} replicas on "
            f"{[str(d) for d in strategy.extended.worker_devices]}. Use a single-replica strategy "
            "(default or one_device) to compile on CPU; TPUStrategy compiles with XLA anyway: "
            "leave jit_compile=False there."
        )
    if not isinstance(plan.jit_compile, bool):
        raise ValueError(f"jit_compile must be True or False. Received: {plan.jit_compile!r}")
    check_policy(plan.mixed_precision)
    for name, value in {"num_steps": plan.num_steps, **plan.intervals}.items():
        if name != "num_steps":
            check_positive(name, value, allow_zero=True)
        if value % plan.steps_per_loop:
            raise ValueError(
                f"{name}={value} must be a multiple of steps_per_loop={plan.steps_per_loop} "
                "(the loop acts only between step calls)"
            )
    check_positive("max_checkpoints_to_keep", plan.max_checkpoints_to_keep)


def xla_compiles_replicas(strategy: Any) -> bool:
    """Whether TF can XLA-compile ``strategy``'s replica function: MirroredStrategy (one host)
    with every replica on a GPU (TF then all-reduces without merge_call)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or not isinstance(
        strategy, tf.distribute.MirroredStrategy
    ):
        return False
    return all("GPU" in str(d).upper() for d in strategy.extended.worker_devices)
