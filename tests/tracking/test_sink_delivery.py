"""How often and in what order the Sacred sink delivers to observers (the cost of tracking).

Each delivery is disk or database I/O on the training thread, so the sink must make few of them
without losing a point: one beat at start (group table), one every ``flush_every_s`` seconds while
logging, one metrics delivery per flush with something queued (none when the queue is empty),
and Sacred's final beat. An observer that records every event checks the sequence.
"""

from __future__ import annotations

import sqlite3

from sacred import Experiment
from sacred.observers import RunObserver

from capreolus_opt.tracking.experiment import make_experiment
from capreolus_opt.tracking.sink import SacredMetricsSink
from tests.tracking import fake_backend
from tests.tracking.tracking_helpers import expected_points, train, write_gin


class RecordingObserver(RunObserver):
    """Keeps the sequence of events and every delivered metric point."""

    priority = 0

    def __init__(self) -> None:
        self.events: list[str] = []
        self.deliveries: list[dict[str, list[tuple[int, float]]]] = []
        self.last_info: dict = {}

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        self.events.append("started")
        return _id or 1

    def heartbeat_event(self, info, captured_out, beat_time, result):
        self.events.append("heartbeat")
        self.last_info = dict(info)

    def log_metrics(self, metrics_by_name, info):
        if metrics_by_name:  # Sacred's own beats pass {} when nothing is queued
            self.events.append("metrics")
            self.deliveries.append(
                {
                    k: list(zip(v["steps"], v["values"], strict=True))
                    for k, v in metrics_by_name.items()
                }
            )

    def artifact_event(self, name, filename, metadata=None, content_type=None):
        self.events.append(f"artifact {name}")

    def completed_event(self, stop_time, result):
        self.events.append("completed")

    def points(self) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        for delivery in self.deliveries:
            for name, series in delivery.items():
                out.setdefault(name, []).extend(series)
        return out


def test_sink_beats_every_interval_and_flush_delivers_only_what_is_queued():
    recorder = RecordingObserver()
    ex = Experiment("sink", save_git_info=False)
    ex.observers.append(recorder)
    now = [0.0]

    @ex.main
    def main(_run):
        sink = SacredMetricsSink(_run, flush_every_s=10.0, clock=lambda: now[0])
        for step in range(1, 8):
            now[0] = 4.0 * step  # 4 s per step: 12 s and 24 s are >= 10 s after the last beat
            sink.log_metrics(step, {"loss": 1.0 / step})
            sink.beat_if_due()  # what the beat thread does every flush_every_s seconds
            recorder.events.append(f"logged {step}")
            if step == 2:
                sink.flush()  # delivers steps 1-2 and does not postpone the beat at 12 s
                recorder.events.append("flushed")
        sink.flush()
        sink.flush()  # nothing left: writes nothing

    ex.run(options={"--capture": "sys"})
    assert recorder.events == [
        "started",  # no beat from Sacred's own thread when the sink takes over
        "logged 1",
        "logged 2",
        "metrics",
        "flushed",
        "metrics",  # the beat at 12 s: step 3, info and output
        "heartbeat",
        "logged 3",
        "logged 4",
        "logged 5",
        "metrics",  # the beat at 24 s
        "heartbeat",
        "logged 6",
        "logged 7",
        "metrics",  # the first final flush; the second one found nothing queued
        "heartbeat",  # Sacred's final beat, when the run stops
        "completed",
    ]
    steps = [[s for s, _ in d["loss"]] for d in recorder.deliveries]
    assert steps == [[1, 2], [3], [4, 5, 6], [7]]
    assert recorder.points() == {"loss": [(s, 1.0 / s) for s in range(1, 8)]}


def test_tracked_run_delivers_metrics_once_and_info_with_the_final_beat(tmp_path):
    recorder = RecordingObserver()
    ex = make_experiment(backend=fake_backend, flush_every_s=3600.0)
    ex.observers.append(recorder)
    gin = write_gin(tmp_path / "a.gin", steps=5)
    ex.run(
        config_updates={"gin_files": [gin], "workdir": str(tmp_path / "w")},
        options={"--capture": "sys"},
    )
    assert recorder.events == [
        "started",
        "artifact group_table.csv",
        "heartbeat",  # on_start: the group table is recorded before the first step
        "artifact checkpoint.txt",
        "artifact operative_config.gin",
        "metrics",  # all five steps at the end (the interval never elapsed)
        "heartbeat",  # Sacred's final beat carries the final info
        "completed",
    ]
    assert recorder.points() == expected_points(range(1, 6))
    assert recorder.last_info["operative_gin_config"] == "train.steps = 5\n"
    assert recorder.last_info["checkpoint_path"] == str(tmp_path / "w" / "ckpt.json")


def test_sqlite_store_uses_write_ahead_log(in_tmp):
    gin = write_gin(in_tmp / "a.gin", steps=3)
    assert train([gin, "--observer", f"sqlite:///{in_tmp}/r.db"]) == 0
    connection = sqlite3.connect(in_tmp / "r.db")
    try:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        (n_points,) = connection.execute("SELECT COUNT(*) FROM metrics").fetchone()
    finally:
        connection.close()
    assert mode == "wal"  # commits append to the log instead of syncing the file each time
    assert n_points == sum(len(v) for v in expected_points(range(1, 4)).values())
