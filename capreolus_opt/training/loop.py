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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from capreolus_opt.records.schema import MetricName
from capreolus_opt.training import diagnostics as diag
from capreolus_opt.training import precision
from capreolus_opt.training.checkpoints import CheckpointState, stop_on_signals
from capreolus_opt.training.data import distribute_eval_dataset, distribute_train_dataset
from capreolus_opt.training.plan import Plan, validate
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
    # The step counter variable (`iterations` is a tensor under gradient accumulation).
    counter = optimizer.variables[0]
    if not strategy.extended.variable_created_in_scope(getattr(counter, "value", counter)):
        raise ValueError(
            f"optimizer {optimizer.name!r} was created outside the scope of the "
            f"{type(strategy).__name__}; pass a zero-argument factory so train() can create it "
            "inside strategy.scope()"
        )
    return optimizer


def _gather(fns: StepFunctions, dataset: Any, on_batch: Callable[[], None]) -> dict:
    """Every output of the traced eval step over ``dataset``, concatenated on the host."""
    chunks: dict[str, list[np.ndarray]] = defaultdict(list)
    iterator = iter(dataset)
    while True:
        try:
            outputs = fns.evaluate(iterator)
        except (tf.errors.OutOfRangeError, StopIteration):
            break
        for name, value in outputs.items():
            chunks[name].append(np.asarray(value))
        on_batch()
    return {k: np.concatenate(v, axis=0) for k, v in chunks.items()}


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
    mixed_precision: str | None = None,
    eval_at_start: bool | None = None,
) -> TrainResult:
    """Train ``task`` for ``num_steps`` optimizer steps (resuming from ``workdir`` if it holds a
    checkpoint) and evaluate at the end.

    Every ``metrics_every`` steps the sink receives ``train/loss`` and the per-group diagnostics;
    every ``eval_every`` steps (0: only at the end) the ``eval/<metric>`` values; a checkpoint is
    written every ``checkpoint_every`` steps (0: only at the end), at the end, and on
    SIGINT/SIGTERM (then ``KeyboardInterrupt`` is raised). Intervals and ``num_steps`` must be
    multiples of ``steps_per_loop``; 0 disables an interval. ``mixed_precision``
    (``"mixed_float16"``, ``"mixed_bfloat16"`` or None) is the Keras policy the model is built
    under (float16 adds dynamic loss scaling; see ``precision.py``); ``jit_compile`` XLA-compiles
    each replica's step (one replica, or MirroredStrategy over GPUs). ``eval_at_start``
    evaluates before the first step (step 0; not when resuming past it); None means "when the
    task's model starts from pretrained weights" (``task.pretrained``). A task with a test split
    (``training/selection.py``) has its test candidates scored once, at the end, by the model
    selected on dev.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (the last good checkpoint is kept).
        KeyboardInterrupt: SIGINT/SIGTERM arrived (after checkpointing and flushing the sink).
        CheckpointReadError: ``workdir`` holds checkpoints but none can be read.
        ValueError, TypeError: bad arguments (the message names the value).
    """
    plan = Plan(
        num_steps=num_steps,
        global_batch_size=global_batch_size,
        seed=seed,
        steps_per_loop=steps_per_loop,
        metrics_every=metrics_every,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        max_checkpoints_to_keep=max_checkpoints_to_keep,
        jit_compile=jit_compile,
        mixed_precision=mixed_precision,
    )
    validate(plan, strategy)
    with precision.policy_scope(mixed_precision) as policy:
        run = _prepare(task, optimizer, strategy, workdir, plan, sink, policy)
        start_step = _restore(run)
        if on_start is not None:
            on_start(run.start_info(start_step))
        _build_steps_and_data(run, start_step, progress)
        if eval_at_start is None:
            eval_at_start = bool(getattr(task, "pretrained", False))
        if eval_at_start and start_step == 0:
            run.start_metrics = _run_eval(run, 0)
        step = _run_steps(run, start_step)
        return _finish(run, step)


@dataclass
class _Run:
    """What one ``train`` call builds, in the order it builds it."""

    task: Any
    strategy: tf.distribute.Strategy
    plan: Plan
    model: keras.Model
    optimizer: Any  # the one with the groups (AdamMultilr); checkpointed as "optimizer"
    step_optimizer: Any  # what the step applies: optimizer, or a LossScaleOptimizer around it
    variables: list[Any]
    state: CheckpointState
    summary: dict[str, Any]
    log: MetricsSink | None  # the sink, on the chief only
    group_index: diag.GroupIndex
    group_table: Any
    fns: StepFunctions | None = None
    train_data: Any = None
    eval_data: Any = None
    reporter: ProgressReporter | None = None
    recorder: EvaluationRecorder | None = None  # run files and best model (selection.py)
    eval_batches: int | None = None
    start_metrics: dict[str, float] | None = None  # the step-0 evaluation, when there was one

    def start_info(self, start_step: int) -> dict[str, Any]:
        return {
            "group_table": self.group_table,
            "strategy_summary": self.summary,
            "start_step": start_step,
            "restored_from": self.state.restored_path,
            "task_info": getattr(self.task, "run_info", dict)(),
        }


def _prepare(
    task: Any,
    optimizer: Any,
    strategy: tf.distribute.Strategy,
    workdir: str,
    plan: Plan,
    sink: MetricsSink | None,
    policy: str,
) -> _Run:
    """Seed, then build the model, the optimizer and the checkpoint inside the strategy (under
    the dtype ``policy``)."""
    summary = {
        **strategy_summary(strategy),
        "mixed_precision": plan.mixed_precision,
        "dtype_policy": policy,
        "jit_compile": plan.jit_compile,
    }
    chief = is_chief(strategy)
    keras.utils.set_random_seed(plan.seed)
    with strategy.scope():
        model = task.build_model()
        opt = _build_optimizer(optimizer, strategy)
        step_opt = opt
        if precision.needs_loss_scaling(policy):
            step_opt = precision.wrap_for_loss_scaling(opt)
        variables = list(model.trainable_variables)
        step_opt.build(variables)
        state = CheckpointState(
            workdir=workdir,
            model=model,
            optimizer=opt,
            chief=chief,
            worker_id=int(summary.get("task_id", 0)),
            max_to_keep=plan.max_checkpoints_to_keep,
            extra=precision.loss_scale_state(step_opt),
        )
    return _Run(
        task=task,
        strategy=strategy,
        plan=plan,
        model=model,
        optimizer=opt,
        step_optimizer=step_opt,
        variables=variables,
        state=state,
        summary=summary,
        log=sink if (sink is not None and chief) else None,
        group_index=diag.resolve_group_index(opt, variables),
        group_table=opt.group_table() if hasattr(opt, "group_table") else None,
    )


def _restore(run: _Run) -> int:
    """Restore the newest readable checkpoint; return the step to start from."""
    start_step = run.state.restore_latest()
    if start_step % run.plan.steps_per_loop:
        raise ValueError(
            f"the checkpoint in {run.state.workdir} is at step {start_step}, not a multiple of "
            f"steps_per_loop={run.plan.steps_per_loop}"
        )
    return start_step


def _build_steps_and_data(run: _Run, start_step: int, progress: str | bool) -> None:
    plan = run.plan
    run.fns = build_step_functions(
        task=run.task,
        model=run.model,
        optimizer=run.step_optimizer,
        strategy=run.strategy,
        global_batch_size=plan.global_batch_size,
        group_index=run.group_index,
        steps_per_loop=plan.steps_per_loop,
        jit_compile=plan.jit_compile,
    )
    run.train_data = distribute_train_dataset(
        run.task, run.strategy, plan.global_batch_size, plan.seed, start_step
    )
    eval_dataset = run.task.eval_dataset(plan.global_batch_size)
    run.eval_batches = _batches(eval_dataset)
    run.eval_data = distribute_eval_dataset(eval_dataset, run.strategy)
    run.recorder = EvaluationRecorder(
        run.task, run.model, run.state.workdir, chief=is_chief(run.strategy)
    )
    run.reporter = ProgressReporter(
        plan.num_steps,
        plan.global_batch_size,
        mode=progress if is_chief(run.strategy) else "off",
        every=plan.metrics_every or 100,
        start_step=start_step,
    )


def _outputs(run: _Run, dataset: Any, batches: int | None, what: str) -> dict:
    """The eval step's outputs over a distributed ``dataset`` of ``batches`` global batches,
    with a progress line saying ``what`` is evaluated."""
    on_batch = run.reporter.eval_started(what, batches)
    try:
        return _gather(run.fns, dataset, on_batch)
    finally:
        run.reporter.eval_done()


def _batches(dataset: tf.data.Dataset) -> int | None:
    """The number of batches of a finite dataset, None when TensorFlow cannot tell."""
    n = int(dataset.cardinality())
    return n if n >= 0 else None


def _run_eval(run: _Run, step: int) -> dict[str, float]:
    gathered = _outputs(run, run.eval_data, run.eval_batches, f"eval at step {step}")
    metrics = {k: float(v) for k, v in run.task.eval_metrics(gathered).items()}
    run.recorder.evaluated(step, metrics)
    run.reporter.evaluated(step, metrics)
    if run.log is not None:
        run.log.log_metrics(step, {MetricName.eval(k): v for k, v in metrics.items()})
    return metrics


def _run_steps(run: _Run, start_step: int) -> int:
    """Step calls until ``num_steps``, with metrics, evals and checkpoints between them; return
    the step reached. Flushes the sink also when a fault or a signal ends the loop."""
    step, iterator = start_step, iter(run.train_data)
    # One worker alone cannot checkpoint (a save is collective), so with several workers a signal
    # becomes a vote in the next step's loss all-reduce and every worker stops after that step.
    alone = int(run.summary.get("num_workers", 1)) == 1
    votes_for = {False: tf.constant(0.0), True: tf.constant(1.0)}
    try:
        with stop_on_signals() as stop:
            while step < run.plan.num_steps:
                step, votes = _step_call(run, iterator, step, votes_for[bool(stop)])
                if (stop and alone) or votes > 0:
                    _checkpoint(run, step)
                    cause = f"signal {stop.signal}" if stop else "a signal to another worker"
                    raise KeyboardInterrupt(f"{cause} at step {step}; checkpointed")
                _between_calls(run, step)
    finally:
        # Also on NonFiniteLossError / KeyboardInterrupt: what was logged reaches the tracker.
        run.reporter.close()
        if run.log is not None:
            run.log.flush()
    return step


def _step_call(run: _Run, iterator: Any, step: int, vote: tf.Tensor) -> tuple[int, float]:
    """One call of a traced step function (``steps_per_loop`` steps) carrying this worker's stop
    ``vote``; returns the step reached and the votes summed over the workers."""
    plan, fns = run.plan, run.fns
    with_diag = plan.metrics_every and (step + plan.steps_per_loop) % plan.metrics_every == 0
    if with_diag:
        losses, votes, values = fns.train_with_diagnostics(iterator, vote)
    else:
        (losses, votes), values = fns.train(iterator, vote), None
    losses = np.asarray(losses)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        raise NonFiniteLossError(step + int(bad[0]) + 1, float(losses[bad[0]]))
    step += plan.steps_per_loop
    run.reporter.update(step, float(losses[-1]))
    if with_diag and run.log is not None:
        metrics = {MetricName.TRAIN_LOSS: float(losses[-1])}
        metrics.update({k: float(v) for k, v in values.items()})
        run.log.log_metrics(step, metrics)
    return step, float(votes)


def _checkpoint(run: _Run, step: int) -> None:
    """Save a checkpoint at ``step`` once every point logged up to it has reached the sink.

    A run resumed from this checkpoint restarts after ``step``: had the sink still held points
    before it (a slow observer, a loaded machine), a kill right after the save would lose them
    for good, a gap no resume could fill (seen in CI: points to step 172, checkpoint at 200).
    """
    if run.log is not None:
        run.log.flush()
    run.state.save(step)


def _between_calls(run: _Run, step: int) -> None:
    plan = run.plan
    if plan.checkpoint_every and step % plan.checkpoint_every == 0:
        _checkpoint(run, step)
    if plan.eval_every and step % plan.eval_every == 0 and step < plan.num_steps:
        _run_eval(run, step)


def _score_test(run: _Run) -> None:
    """The test candidates scored once by the best model (``selection.py``). With several
    workers only the chief holds that model's weights, so ``rerank`` scores the test split."""
    if int(run.summary.get("num_workers", 1)) != 1:
        return

    def evaluate(dataset: tf.data.Dataset) -> dict:
        distributed = distribute_eval_dataset(dataset, run.strategy)
        return _outputs(run, distributed, _batches(dataset), "test, best model")

    run.recorder.score_test(evaluate, run.plan.global_batch_size)


def _finish(run: _Run, step: int) -> TrainResult:
    """Final evaluation and checkpoint, the test split scored by the best model; the result."""
    last = _run_eval(run, step)
    if run.state.last_saved_step != step:
        _checkpoint(run, step)
    _score_test(run)  # after the checkpoint: it loads the best weights into the model
    eval_metrics, artifacts = run.recorder.finish(last)
    if run.start_metrics is not None and not any(k.startswith("start/") for k in eval_metrics):
        eval_metrics.update({f"start/{k}": v for k, v in run.start_metrics.items()})
    if run.log is not None:
        run.log.flush()
    return TrainResult(
        final_step=step,
        eval_metrics=eval_metrics,
        checkpoint_path=run.state.latest_path,
        group_table=run.group_table,
        strategy_summary=run.summary,
        trace_counts=dict(run.fns.trace_counts),
        artifacts=artifacts,
    )
