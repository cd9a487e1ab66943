"""``train()``: the task-agnostic training loop (see docs/ARCHITECTURE.md, training/).

Example::

    strategy = make_strategy("auto")
    result = train(task=task, optimizer=lambda: AdamMultilr(...), strategy=strategy,
                   workdir="/tmp/run", num_steps=1000, global_batch_size=32, seed=0,
                   sink=ListSink())
    result.eval_metrics  # {"mrr@10": ...}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from capreolus_opt.training import diagnostics as diag
from capreolus_opt.training.checkpoints import CheckpointState, stop_on_signals
from capreolus_opt.training.data import distribute_eval_dataset, distribute_train_dataset
from capreolus_opt.training.selection import EvaluationRecorder
from capreolus_opt.training.sinks import MetricsSink, ProgressReporter
from capreolus_opt.training.step import StepFunctions, build_step_functions
from capreolus_opt.training.strategy import is_chief, strategy_summary

#: Diagnostics every 100 steps cost ~1% of step time (benchmarks/diagnostics_overhead.py).
DEFAULT_METRICS_EVERY = 100


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``step`` is the 1-based step that produced it."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(
            f"non-finite training loss {loss} at step {step}; the last good checkpoint is kept"
        )
        self.step = step
        self.loss = loss


@dataclass
class TrainResult:
    final_step: int
    eval_metrics: dict[str, float]
    checkpoint_path: str | None
    group_table: Any  # GroupTable, or None for an optimizer without groups
    strategy_summary: dict[str, Any]
    #: traces of each step function in this call (1 each at most when nothing retraced)
    trace_counts: dict[str, int] = field(default_factory=dict)
    #: files the task wrote for its evaluations (run files, per-query metrics; selection.py)
    artifacts: list[str] = field(default_factory=list)


def _check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise ValueError(f"{name} must be an int {bound}. Received: {value!r}")


def _validate(
    num_steps: int,
    global_batch_size: int,
    steps_per_loop: int,
    strategy: Any,
    jit_compile: bool,
    intervals: Mapping[str, int],
) -> None:
    _check_positive("num_steps", num_steps, allow_zero=True)
    _check_positive("global_batch_size", global_batch_size)
    _check_positive("steps_per_loop", steps_per_loop)
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the {replicas} replicas "
            "of the strategy"
        )
    if jit_compile and replicas > 1:
        # XLA cannot compile a replica function that reads mirrored variables ("Trying to access
        # resource .../replica_1 ... from device CPU:0", TF 2.21) nor the optimizer's merge_call.
        raise ValueError(
            f"jit_compile=True needs a single-replica strategy (default or one_device); "
            f"{type(strategy).__name__} has {replicas} replicas. TPUStrategy compiles with XLA "
            "anyway: leave jit_compile=False there."
        )
    for name, value in {"num_steps": num_steps, **intervals}.items():
        if name != "num_steps":
            _check_positive(name, value, allow_zero=True)
        if value % steps_per_loop:
            raise ValueError(
                f"{name}={value} must be a multiple of steps_per_loop={steps_per_loop} "
                "(the loop acts only between step calls)"
            )


def _build_optimizer(optimizer: Any, strategy: tf.distribute.Strategy) -> Any:
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        if not callable(optimizer):
            raise TypeError(
                "optimizer must be a keras optimizer or a zero-argument factory returning one. "
                f"Received: {optimizer!r}"
            )
        optimizer = optimizer()
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(f"the optimizer factory returned {optimizer!r}, not a keras optimizer")
    if not strategy.extended.variable_created_in_scope(optimizer.iterations.value):
        raise ValueError(
            f"optimizer {optimizer.name!r} was created outside the scope of the "
            f"{type(strategy).__name__}; pass a zero-argument factory so train() can create it "
            "inside strategy.scope()"
        )
    return optimizer


def _evaluate(fns: StepFunctions, dataset: Any, task: Any) -> dict[str, float]:
    chunks: dict[str, list[np.ndarray]] = defaultdict(list)
    iterator = iter(dataset)
    while True:
        try:
            outputs = fns.evaluate(iterator)
        except (tf.errors.OutOfRangeError, StopIteration):
            break
        for name, value in outputs.items():
            chunks[name].append(np.asarray(value))
    gathered = {k: np.concatenate(v, axis=0) for k, v in chunks.items()}
    return {k: float(v) for k, v in task.eval_metrics(gathered).items()}


def train(
    *,
    task: Any,
    optimizer: Any,
    strategy: tf.distribute.Strategy,
    workdir: str,
    num_steps: int,
    global_batch_size: int,
    seed: int,
    jit_compile: bool = False,
    steps_per_loop: int = 1,
    metrics_every: int = DEFAULT_METRICS_EVERY,
    eval_every: int = 0,
    checkpoint_every: int = 0,
    max_checkpoints_to_keep: int = 3,
    sink: MetricsSink | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    progress: str | bool = "auto",
) -> TrainResult:
    """Train ``task`` for ``num_steps`` optimizer steps (resuming from ``workdir`` if it holds a
    checkpoint) and evaluate at the end.

    Every ``metrics_every`` steps the sink receives ``train/loss`` and the per-group diagnostics;
    every ``eval_every`` steps (0: only at the end) the ``eval/<metric>`` values; a checkpoint is
    written every ``checkpoint_every`` steps (0: only at the end), at the end, and on
    SIGINT/SIGTERM (then ``KeyboardInterrupt`` is raised). Intervals and ``num_steps`` must be
    multiples of ``steps_per_loop``; 0 disables an interval.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        KeyboardInterrupt: SIGINT/SIGTERM arrived (after checkpointing and flushing the sink).
        ValueError, TypeError: bad arguments (the message names the value).
    """
    intervals = {
        "metrics_every": metrics_every,
        "eval_every": eval_every,
        "checkpoint_every": checkpoint_every,
    }
    _validate(num_steps, global_batch_size, steps_per_loop, strategy, jit_compile, intervals)
    _check_positive("max_checkpoints_to_keep", max_checkpoints_to_keep)
    summary = strategy_summary(strategy)
    chief = is_chief(strategy)
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = task.build_model()
        opt = _build_optimizer(optimizer, strategy)
        variables = list(model.trainable_variables)
        opt.build(variables)
        state = CheckpointState(
            workdir=workdir,
            model=model,
            optimizer=opt,
            chief=chief,
            worker_id=int(summary.get("task_id", 0)),
            max_to_keep=max_checkpoints_to_keep,
        )
    start_step = state.restore_latest()
    if start_step % steps_per_loop:
        raise ValueError(
            f"the checkpoint in {workdir} is at step {start_step}, not a multiple of "
            f"steps_per_loop={steps_per_loop}"
        )
    group_index = diag.resolve_group_index(opt, variables)
    group_table = opt.group_table() if hasattr(opt, "group_table") else None
    if on_start is not None:
        on_start(
            {
                "group_table": group_table,
                "strategy_summary": summary,
                "start_step": start_step,
                "task_info": getattr(task, "run_info", dict)(),
                "restored_from": state.restored_path,
            }
        )
    fns = build_step_functions(
        task=task,
        model=model,
        optimizer=opt,
        strategy=strategy,
        global_batch_size=global_batch_size,
        group_index=group_index,
        steps_per_loop=steps_per_loop,
        jit_compile=jit_compile,
    )
    train_data = distribute_train_dataset(task, strategy, global_batch_size, seed, start_step)
    eval_data = distribute_eval_dataset(task, strategy, global_batch_size)
    log = sink if (sink is not None and chief) else None
    recorder = EvaluationRecorder(task, model, workdir, chief=chief)
    reporter = ProgressReporter(
        num_steps,
        global_batch_size,
        mode=progress if chief else "off",
        every=metrics_every or 100,
        start_step=start_step,
    )

    def run_eval(step: int) -> dict[str, float]:
        metrics = _evaluate(fns, eval_data, task)
        recorder.evaluated(step, metrics)
        reporter.evaluated(step, metrics)
        if log is not None:
            log.log_metrics(step, {f"eval/{k}": v for k, v in metrics.items()})
        return metrics

    step = start_step
    iterator = iter(train_data)
    # One worker alone cannot checkpoint (a save is collective), so with several workers a signal
    # becomes a vote in the next step's loss all-reduce and every worker stops after that step.
    alone = int(summary.get("num_workers", 1)) == 1
    votes_for = {False: tf.constant(0.0), True: tf.constant(1.0)}
    try:
        with stop_on_signals() as stop:
            while step < num_steps:
                with_diag = metrics_every and (step + steps_per_loop) % metrics_every == 0
                vote = votes_for[bool(stop)]
                if with_diag:
                    losses, votes, values = fns.train_with_diagnostics(iterator, vote)
                else:
                    (losses, votes), values = fns.train(iterator, vote), None
                losses = np.asarray(losses)
                bad = np.flatnonzero(~np.isfinite(losses))
                if bad.size:
                    raise NonFiniteLossError(step + int(bad[0]) + 1, float(losses[bad[0]]))
                step += steps_per_loop
                reporter.update(step, float(losses[-1]))
                if with_diag and log is not None:
                    metrics = {"train/loss": float(losses[-1])}
                    metrics.update({k: float(v) for k, v in values.items()})
                    log.log_metrics(step, metrics)
                if (stop and alone) or float(votes) > 0:
                    state.save(step)
                    cause = f"signal {stop.signal}" if stop else "a signal to another worker"
                    raise KeyboardInterrupt(f"{cause} at step {step}; checkpointed")
                if checkpoint_every and step % checkpoint_every == 0:
                    state.save(step)
                if eval_every and step % eval_every == 0 and step < num_steps:
                    run_eval(step)
    finally:
        # Also on NonFiniteLossError / KeyboardInterrupt: what was logged reaches the tracker.
        reporter.close()
        if log is not None:
            log.flush()
    eval_metrics, artifacts = recorder.finish(run_eval(step))
    if state.last_saved_step != step:
        state.save(step)
    if log is not None:
        log.flush()
    return TrainResult(
        final_step=step,
        eval_metrics=eval_metrics,
        checkpoint_path=state.latest_path,
        group_table=group_table,
        strategy_summary=summary,
        trace_counts=dict(fns.trace_counts),
        artifacts=artifacts,
    )
