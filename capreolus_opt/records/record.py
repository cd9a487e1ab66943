"""The normalized run record that every observer reader produces.

A tracked run (docs/ARCHITECTURE.md, "Run record contract") is stored differently by each Sacred
observer; the readers in ``file.py``, ``sql.py`` and ``mongo.py`` turn each stored record into one
:class:`Run`, so that ``compare``/``diff``/``plot`` never care where a run came from. A run is
identified by ``info.run_uuid`` (ours), not by Sacred's id, which differs across observers.

Which value is "best" (:func:`best_direction`): a metric whose last path component contains
``loss``, ``error`` or ``perplexity`` is minimised; the per-group diagnostics ``group/...`` (lr,
grad/update/param norms) have no better direction, so no best; every other metric
(``eval/mrr@10``, ``eval/ndcg@10``, ...) is maximised.

A run whose process died (SIGKILL, power loss, OOM killer) never reports its end, so its record
says RUNNING for ever; ``Run.status`` is then ``DIED`` by the rule of
:func:`capreolus_opt.records.status.live_status`, and ``Run.stored_status`` keeps what the store
says.

A resumed run (``info.resumed_from``) restarts at its checkpoint's step ``info.start_step``: the
points the earlier run logged after that step were computed from a state the resumed run
recomputes, so :func:`continued_metrics` takes the earlier run's points up to ``start_step`` and
the resumed run's after it -- one point per logged step, no gap, no repeat.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from capreolus_opt.records.schema import (
    MetricName,
    RecordedConfig,
    RecordedInfo,
    RecordError,
    result_from_record,
)
from capreolus_opt.records.status import live_status

_MINIMISED_WORDS = ("loss", "error", "perplexity")


@dataclasses.dataclass(frozen=True)
class LoadProblem:
    """A record (or a whole source) that was skipped, with where it is and why."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


#: Leaves of a paired comparison with the first stage (``<split>/model/p_ttest``, ...): facts
#: about one evaluation, with no better direction across a run's evaluations.
_COMPARISON_LEAVES = ("diff", "wins", "ties", "losses")


def best_direction(metric: str) -> str | None:
    """``"min"`` for losses/errors/perplexity; None for ``group/`` diagnostics and for the
    p-values (``p_...``) and counts of a comparison with the first stage; else ``"max"``."""
    leaf = metric.rsplit("/", 1)[-1].lower()
    if leaf.startswith("p_") or leaf in _COMPARISON_LEAVES:
        return None
    if any(word in leaf for word in _MINIMISED_WORDS):
        return "min"
    if metric.startswith(MetricName.GROUP_PREFIX):
        return None
    return "max"


@dataclasses.dataclass
class MetricSeries:
    """One metric's points in logging order; ``timestamps`` may be empty when not stored."""

    steps: list[int]
    values: list[float]
    timestamps: list[Any] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def final(self) -> float | None:
        """The value logged at the largest step (the last point on ties); None when empty."""
        if not self.values:
            return None
        last = max(range(len(self.steps)), key=lambda i: (self.steps[i], i))
        return self.values[last]

    def best(self, minimise: bool) -> float | None:
        """The minimum (``minimise``) or maximum finite value; None when there is none."""
        finite = [v for v in self.values if not math.isnan(v)]
        if not finite:
            return None
        return min(finite) if minimise else max(finite)


@dataclasses.dataclass
class Run:
    """One tracked run, independent of the observer(s) it was read from.

    ``sources`` lists every observer location the run was found in and ``sacred_ids`` maps each
    of them to Sacred's id there. ``hparams`` keeps the recorded order of ``config.hparams``.
    """

    run_uuid: str
    status: str
    start_time: dt.datetime | None
    stop_time: dt.datetime | None
    hparams: dict[str, Any]
    gin_files: list[str]
    gin_bindings: list[str]
    seed: int | None
    group_table: list[dict[str, Any]]
    metrics: dict[str, MetricSeries]
    result: dict[str, float]
    resumed_from: str | None = None
    workdir: str | None = None
    #: why an INTERRUPTED run stopped early when something chose to stop it (``"pruned"``)
    stopped_reason: str | None = None
    sources: list[str] = dataclasses.field(default_factory=list)
    heartbeat: dt.datetime | None = None
    stored_status: str = ""
    start_step: int = 0
    sacred_ids: dict[str, str] = dataclasses.field(default_factory=dict)
    #: the COMPLETED run this one trained further (``train --resume`` with more steps)
    continued_from: str | None = None
    # Per-query artifacts (records/per_query.py): names and lazy reader, set by the readers.
    artifacts: Any = dataclasses.field(default=None, repr=False, compare=False)

    def per_query(self, metric: str) -> dict[str, float] | None:
        """``{qid: value}`` of ``metric`` (``test/nDCG@10``) from the run's
        ``per_query_<split>.tsv`` artifact; None when the run has no such values.

        Raises:
            per_query.PerQueryError: when the artifact exists but breaks the format.
        """
        from capreolus_opt.records import per_query

        target = per_query.artifact_name(metric)
        if target is None or self.artifacts is None:
            return None
        table = self.artifacts.table(target[0])
        return None if table is None else per_query.lookup(table, target[1])

    @property
    def short_id(self) -> str:
        """The first 8 hex digits of the UUID (what tables print)."""
        return self.run_uuid[:8]

    @property
    def duration(self) -> float | None:
        """Seconds from start to stop; None while either is unknown."""
        if self.start_time is None or self.stop_time is None:
            return None
        return (self.stop_time - self.start_time).total_seconds()

    def final(self, metric: str) -> float | None:
        """Last logged value of ``metric``, falling back to ``result`` for ``eval/`` metrics."""
        series = self.metrics.get(metric)
        if series is not None and len(series):
            return series.final
        return self._from_result(metric)

    def best(self, metric: str) -> float | None:
        """Best logged value of ``metric`` under :func:`best_direction` (None when it has no
        direction); see :meth:`final`."""
        direction = best_direction(metric)
        if direction is None:
            return None
        series = self.metrics.get(metric)
        if series is not None and len(series):
            return series.best(direction == "min")
        return self._from_result(metric)

    def _from_result(self, metric: str) -> float | None:
        # The result dict holds the final eval metrics, with or without the "eval/" prefix.
        if metric in self.result:
            return self.result[metric]
        if metric.startswith(MetricName.EVAL_PREFIX):
            return self.result.get(metric.removeprefix(MetricName.EVAL_PREFIX))
        return None

    def metric_names(self) -> set[str]:
        """Names of the stored metric series plus ``eval/<key>`` for each result entry."""
        names = {name for name, series in self.metrics.items() if len(series)}
        prefix = MetricName.EVAL_PREFIX
        names.update(k if k.startswith(prefix) else MetricName.eval(k) for k in self.result)
        return names


def to_datetime(value: Any) -> dt.datetime | None:
    """Parse Sacred's stored times (datetime, ISO string, Mongo ``{"$date": ...}``) as naive UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise RecordError(f"time {value!r} is not an ISO-8601 timestamp") from exc
    else:
        raise RecordError(f"time {value!r} is neither a datetime nor an ISO-8601 string")
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return stamp


def check_steps(name: str, steps: list[Any]) -> None:
    """Raise RecordError unless every step of metric ``name`` is an integer (not a bool)."""
    for step in steps:
        if type(step) is not int:
            raise RecordError(f"metric {name!r} has a non-integer step {step!r}")


def check_series(name: str, steps: Any, values: Any) -> MetricSeries:
    """Validate parallel step/value lists of one metric; raise RecordError naming the metric."""
    if not isinstance(steps, list) or not isinstance(values, list) or len(steps) != len(values):
        raise RecordError(f"metric {name!r} has mismatched or missing steps/values")
    check_steps(name, steps)
    try:
        values = [float(v) if v is not None else math.nan for v in values]
    except (TypeError, ValueError) as exc:
        raise RecordError(f"metric {name!r} has a non-numeric value: {exc}") from exc
    return MetricSeries(steps=steps, values=values)


def continued_metrics(earlier: Run, resumed: Run) -> dict[str, MetricSeries]:
    """The metrics of ``earlier`` continued by ``resumed`` (which has ``resumed_from`` set to
    ``earlier``): earlier points up to ``resumed.start_step``, then the resumed run's points."""
    out: dict[str, MetricSeries] = {}
    for name in {**earlier.metrics, **resumed.metrics}:
        steps: list[int] = []
        values: list[float] = []
        for run, keep in ((earlier, lambda s: s <= resumed.start_step), (resumed, None)):
            series = run.metrics.get(name)
            if series is None:
                continue
            for step, value in zip(series.steps, series.values, strict=True):
                if keep is None or keep(step):
                    steps.append(step)
                    values.append(value)
        out[name] = MetricSeries(steps=steps, values=values)
    return out


def build_run(
    *,
    source: str,
    sacred_id: Any,
    status: Any,
    start_time: Any,
    stop_time: Any,
    config: Any,
    info: Any,
    result: Any,
    metrics: Mapping[str, MetricSeries],
    heartbeat: Any = None,
) -> Run:
    """Assemble a :class:`Run` from one observer's raw fields, validating the contract
    (:mod:`capreolus_opt.records.schema`).

    Raises:
        RecordError: when ``info.run_uuid`` or ``config.hparams`` is missing or malformed.
    """
    if not isinstance(config, Mapping):
        raise RecordError("config is missing or not a mapping")
    recorded = RecordedInfo.from_record(info)
    if not isinstance(status, str):
        raise RecordError(f"status {status!r} is not a string")
    recorded_config = RecordedConfig.from_record(config)
    start, beat = to_datetime(start_time), to_datetime(heartbeat)
    return Run(
        run_uuid=recorded.run_uuid,
        status=live_status(status, beat, start, recorded.beat_every_s),
        stored_status=status,
        heartbeat=beat,
        start_step=recorded.start_step,
        start_time=start,
        stop_time=to_datetime(stop_time),
        hparams=recorded_config.hparams,
        gin_files=recorded_config.gin_files,
        gin_bindings=recorded_config.gin_bindings,
        seed=recorded_config.seed,
        group_table=recorded.group_table,
        metrics=dict(metrics),
        result=result_from_record(result),
        resumed_from=recorded.resumed_from,
        workdir=recorded.workdir,
        stopped_reason=recorded.stopped_reason,
        continued_from=recorded.continued_from,
        sources=[source],
        sacred_ids={source: str(sacred_id)},
    )


def differing_hparams(runs: Iterable[Run]) -> list[str]:
    """Names of hyperparameters whose value is not the same in every run (missing counts).

    Ordered by first appearance, so tables follow the order of ``config.hparams``.
    """
    runs = list(runs)
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.hparams))
    missing = object()
    differing = []
    for name in names:
        values = [run.hparams.get(name, missing) for run in runs]
        if any(v is missing or v != values[0] for v in values):
            differing.append(name)
    return differing
