"""One Optuna trial = one tracked ``capreolus-opt train`` run, in the worker's process.

The run goes through :func:`capreolus_opt.tracking.run.run_tracked`, the call behind ``train``
(every observer, redaction, resume, input checks, exit codes), with two additions: the run info
holds ``tune: {study, trial}`` and the trial's user attributes hold ``run_uuid`` (so each points at
the other), and the training's metrics sink is wrapped by :class:`TrialSink`, which reports every
``eval/...`` point of the searched metric to the trial. When the pruner says stop (not at the final
evaluation), the sink records ``stopped_reason: pruned`` in the run info and raises
:class:`TrialPruned`, a ``KeyboardInterrupt``: the loop flushes its metrics, Sacred records the run
INTERRUPTED (never FAILED) and the trial is told PRUNED.

A trial interrupted by a signal (Slurm preemption or time-out, Ctrl-C) has written its checkpoint;
the worker marks it ``stopped_reason: interrupted`` and enqueues a copy with the same parameters and
``resume_run`` set, which the next worker to ask continues with ``train --resume`` (the new run's
``resumed_from`` links the two records, and the copy starts with the earlier intermediate values).
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from capreolus_opt.records import exit_codes, status
from capreolus_opt.records.schema import InfoKey
from capreolus_opt.search.space import Dimension, suggest_bindings
from capreolus_opt.storage.workdir_layout import Workdir


class TrialPruned(KeyboardInterrupt):
    """Raised inside training when the pruner stops the trial; Sacred records INTERRUPTED."""

    stopped_reason = status.PRUNED_REASON


class TrialSink:
    """A ``MetricsSink`` that forwards to the run's sink and reports ``metric`` to the trial."""

    def __init__(
        self, inner: Any, trial: Any, metric: str, num_steps: int | None, reported: set[int]
    ) -> None:
        self._inner, self._trial, self._metric = inner, trial, metric
        self._num_steps = num_steps
        self._reported = reported  # steps the trial already holds (a resumed trial's earlier run)
        self.last_value: float | None = None
        self.pruned_at: int | None = None

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        if self._inner is not None:
            self._inner.log_metrics(step, metrics)
        if self._metric not in metrics:
            return
        self.last_value = value = float(metrics[self._metric])
        if step in self._reported:
            return
        self._reported.add(step)
        self._trial.report(value, step)
        final = self._num_steps is not None and step >= self._num_steps
        if not final and self._trial.should_prune():
            self.pruned_at = step
            record_info = getattr(self._inner, "record_info", None)  # SacredMetricsSink's
            if record_info is not None:
                record_info(
                    **{
                        InfoKey.STOPPED_REASON: status.PRUNED_REASON,
                        InfoKey.PRUNED_AT_STEP: int(step),
                    }
                )
            raise TrialPruned(
                f"pruned by the study's pruner at step {step} ({self._metric}={value})"
            )

    def flush(self) -> None:
        if self._inner is not None:
            self._inner.flush()

    def beat(self) -> None:
        if self._inner is not None and hasattr(self._inner, "beat"):
            self._inner.beat()


class TrialBackend:
    """The gin backend with :class:`TrialSink` around the training's sink."""

    def __init__(self, backend: Any, trial: Any, metric: str, reported: set[int]) -> None:
        self._backend, self._trial, self._metric, self._reported = backend, trial, metric, reported
        self.sink: TrialSink | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def _num_steps(self) -> int | None:
        configured = getattr(self._backend, "configured", None)
        try:
            steps = configured("train.num_steps") if configured else None
        except Exception:  # a config without train.num_steps: prune at any evaluation
            return None
        return steps if isinstance(steps, int) else None

    def run_training(self, *, workdir: str, sink: Any = None, on_start: Any = None) -> Any:
        self.sink = TrialSink(sink, self._trial, self._metric, self._num_steps(), self._reported)
        return self._backend.run_training(workdir=workdir, sink=self.sink, on_start=on_start)


@dataclasses.dataclass
class TrialOutcome:
    """What the run of one trial gave."""

    returncode: int
    run_uuid: str
    value: float | None
    pruned: bool


def _request(
    spec: Any, gin_files: list[str], bindings: list[str], resume: str | None, info: dict
) -> Any:
    from capreolus_opt.tracking.run import RunRequest

    workdir = ""
    if spec.workdir_root and not resume:
        workdir = Workdir.for_run(spec.workdir_root, info[InfoKey.RUN_UUID]).root
    return RunRequest(
        gin_files=gin_files,
        gin_bindings=bindings,
        workdir=workdir,
        observers=list(spec.observers),
        resume=resume,
        capture=spec.capture,
        run_uuid=info[InfoKey.RUN_UUID],
        info=info,
    )


def run_trial(spec: Any, trial: Any, dims: Sequence[Dimension], backend: Any) -> TrialOutcome:
    """Train the trial's point as a tracked run (resuming ``resume_run`` for a resumed trial)."""
    from capreolus_opt.tracking.run import RunInputError, run_tracked

    bindings = suggest_bindings(trial, dims)
    resume = trial.user_attrs.get("resume_run")
    earlier = trial.user_attrs.get("earlier_values", [])
    for step, value in earlier:
        trial.report(float(value), int(step))
    reported = {int(step) for step, _ in earlier}
    trial.set_user_attr("bindings", bindings)
    while True:
        run_uuid = uuid.uuid4().hex
        trial.set_user_attr("run_uuid", run_uuid)
        tune = {"study": spec.study, "trial": trial.number}
        info = {InfoKey.RUN_UUID: run_uuid, InfoKey.TUNE: tune}
        if resume:
            request = _request(spec, [], [], resume, info)
        else:
            request = _request(spec, list(spec.config), [*spec.gin_param, *bindings], None, info)
        wrapped = TrialBackend(backend, trial, spec.metric, reported)
        try:
            code = run_tracked(request, backend=wrapped).exit_code
        except RunInputError as exc:
            if resume and wrapped.sink is None:
                # The interrupted run was never recorded (stopped before Sacred started).
                print(f"trial {trial.number}: run {resume} cannot be resumed; training afresh")
                resume = None
                continue
            print(f"error: {exc}", file=sys.stderr)
            code = exit_codes.INPUT
        sink = wrapped.sink
        return TrialOutcome(
            returncode=code,
            run_uuid=run_uuid,
            value=sink.last_value if sink else None,
            pruned=bool(sink and sink.pruned_at is not None),
        )
