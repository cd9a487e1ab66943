"""What both exporters need: a run's display name, JSON-able values, epoch times of points."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

from capreolus_opt.records.record import MetricSeries, Run, differing_hparams, to_datetime


def hparam_text(value: Any) -> str | float | int | bool:
    """A value as the trackers take it: scalars unchanged, None/lists/dicts as JSON text."""
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def run_names(runs: Sequence[Run]) -> dict[str, str]:
    """``run_uuid -> "learning_rate=0.001,seed=1 (1a2b3c4d)"``: the differing settings + id."""
    params = differing_hparams(runs)
    out = {}
    for run in runs:
        parts = [
            f"{p.rsplit('.', 1)[-1]}={hparam_text(run.hparams.get(p))}"
            for p in params
            if p in run.hparams
        ]
        out[run.run_uuid] = (",".join(parts) + f" ({run.short_id})") if parts else run.short_id
    return out


def epoch_seconds(stamp: Any, fallback: float) -> float:
    """Seconds since the epoch of a stored point time (naive UTC), else ``fallback``."""
    try:
        when = to_datetime(stamp)
    except ValueError:
        return fallback
    if when is None:
        return fallback
    return when.replace(tzinfo=dt.UTC).timestamp()


def point_times(series: MetricSeries) -> list[Any]:
    """The series' stored point times, or None per point when they were not stored."""
    if len(series.timestamps) == len(series):
        return list(series.timestamps)
    return [None] * len(series)


def start_seconds(run: Run) -> float:
    """The run's start as epoch seconds (0 when unknown)."""
    return epoch_seconds(run.start_time, 0.0)


def result_only_metrics(run: Run) -> dict[str, float]:
    """Final values of ``eval/`` metrics that exist only in ``result`` (no series)."""
    out = {}
    for name in sorted(run.metric_names()):
        if name not in run.metrics or not len(run.metrics[name]):
            value = run.final(name)
            if value is not None and not math.isnan(value):
                out[name] = value
    return out


def last_step(run: Run) -> int:
    """The largest logged step of any series (0 without series)."""
    return max((max(s.steps) for s in run.metrics.values() if len(s)), default=0)
