"""A RUNNING record whose heartbeat stopped is shown as DIED; resumed runs continue without a gap.

The rule lives in :mod:`capreolus_opt.records.record`; tests/faults/test_kill_resume.py checks it
end to end on a real SIGKILLed run.
"""

from __future__ import annotations

import datetime as dt

import pytest

from capreolus_opt.records.record import MetricSeries, build_run, continued_metrics
from capreolus_opt.records.status import SACRED_BEAT_S, STALE_BEATS, live_status

NOW = dt.datetime(2026, 1, 1, 12, 0, 0)


def _ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("status", "beat_age", "beat_every", "expected"),
    [
        ("RUNNING", STALE_BEATS * 3.0 - 1, 3.0, "RUNNING"),
        ("RUNNING", STALE_BEATS * 3.0 + 1, 3.0, "DIED"),
        ("RUNNING", STALE_BEATS * 0.5 + 1, 0.5, "DIED"),
        ("RUNNING", STALE_BEATS * 3.0 + 1, None, "RUNNING"),  # old run: Sacred's 10 s beats
        ("RUNNING", STALE_BEATS * SACRED_BEAT_S + 1, None, "DIED"),
        ("COMPLETED", 10_000, 3.0, "COMPLETED"),
        ("INTERRUPTED", 10_000, 3.0, "INTERRUPTED"),
    ],
)
def test_live_status(status, beat_age, beat_every, expected):
    assert live_status(status, _ago(beat_age), _ago(10**6), beat_every, now=NOW) == expected


def test_without_a_heartbeat_the_start_time_counts():
    assert live_status("RUNNING", None, _ago(1000), 3.0, now=NOW) == "DIED"
    assert live_status("RUNNING", None, _ago(5), 3.0, now=NOW) == "RUNNING"
    assert live_status("RUNNING", None, None, 3.0, now=NOW) == "RUNNING"


def _run(uuid, steps, *, start_step=0, resumed_from=None, beat=None, offset=0.0):
    info = {"run_uuid": uuid, "start_step": start_step, "beat_every_s": 3.0}
    if resumed_from:
        info["resumed_from"] = resumed_from
    return build_run(
        source="s",
        sacred_id=1,
        status="RUNNING",
        start_time="2026-01-01T00:00:00",
        stop_time=None,
        config={"hparams": []},
        info=info,
        result=None,
        metrics={"train/loss": MetricSeries(steps=steps, values=[s + offset for s in steps])},
        heartbeat=beat,
    )


def test_build_run_reports_died_and_keeps_the_stored_status():
    run = _run("a" * 32, [2, 4], beat="2026-01-01T00:00:03")
    assert run.status == "DIED" and run.stored_status == "RUNNING"
    assert run.heartbeat == dt.datetime(2026, 1, 1, 0, 0, 3)


def test_continued_metrics_drop_the_killed_runs_points_after_the_checkpoint():
    killed = _run("a" * 32, [2, 4, 6, 8, 10, 12])  # checkpoint at 8, killed after 12
    resumed = _run("b" * 32, [10, 12, 14, 16], start_step=8, resumed_from="a" * 32, offset=0.5)
    combined = continued_metrics(killed, resumed)
    assert combined["train/loss"].steps == [2, 4, 6, 8, 10, 12, 14, 16]
    assert combined["train/loss"].values == [2.0, 4.0, 6.0, 8.0, 10.5, 12.5, 14.5, 16.5]
