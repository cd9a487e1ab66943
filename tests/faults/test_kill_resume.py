"""SIGKILL a real ``capreolus-opt train`` mid-run, then ``--resume`` it.

Wanted: the killed record keeps every point delivered before the kill (deliveries go on while
training, one per beat, ``--beat_every``) as a gapless prefix of the steps, ``compare`` shows it
as DIED once its heartbeat is ``STALE_BEATS`` beats old, ``--resume`` takes the dead run's
workdir over, and the killed run's points up to the resumed run's start step plus the resumed
run's points are one point per logged step, with no gap and no repeat.
"""

from __future__ import annotations

import json
import time

import pytest

from capreolus_opt.records.load import load_runs
from capreolus_opt.records.record import continued_metrics
from capreolus_opt.records.status import STALE_BEATS
from tests.cli_helpers import run_cli
from tests.faults.fault_tools import TrainProcess, file_steps, smoke_args, wait_until

BEAT_S = 0.5  # smoke_args' --beat_every
NUM_STEPS = 240


@pytest.mark.slow
def test_sigkill_then_resume_has_no_gap(tmp_path):
    runs = tmp_path / "runs"
    args = smoke_args(NUM_STEPS, "--observer", f"file://{runs}", "--workdir", str(tmp_path / "w"))
    proc = TrainProcess(args, tmp_path)
    try:
        # Past the first checkpoint (step 50), so that the resumed run starts there.
        wait_until(lambda: len(file_steps(runs)) >= 40, "points past the first checkpoint")
        seen = len(file_steps(runs))
        wait_until(lambda: len(file_steps(runs)) > seen, "a further delivery while training")
        delivered = file_steps(runs)
        proc.kill()
    finally:
        proc.close()
    (folder,) = [p for p in runs.iterdir() if p.name.isdigit()]
    assert json.loads((folder / "run.json").read_text())["status"] == "RUNNING"
    kept = json.loads((folder / "metrics.json").read_text())["train/loss"]["steps"]
    # Every delivered point survives the kill, and what is on disk is a prefix without gaps.
    assert kept[: len(delivered)] == delivered
    assert kept == list(range(2, 2 * len(kept) + 1, 2)) and kept[-1] < NUM_STEPS

    time.sleep(STALE_BEATS * BEAT_S + 1)
    shown = run_cli("compare", f"file://{runs}")
    assert shown.returncode == 0, shown.stderr
    assert "DIED" in shown.stdout and "RUNNING" not in shown.stdout
    killed_uuid = json.loads((folder / "info.json").read_text())["run_uuid"]

    resumed = run_cli(
        "train", "--resume", killed_uuid, "--observer", f"file://{runs}", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"run {killed_uuid}" in resumed.stdout and "did not finish" in resumed.stdout

    loaded = {run.run_uuid: run for run in load_runs(f"file://{runs}")}
    killed = loaded.pop(killed_uuid)
    (after,) = loaded.values()
    assert killed.status == "DIED" and killed.stored_status == "RUNNING"
    assert after.status == "COMPLETED" and after.resumed_from == killed_uuid
    assert after.start_step >= 50 and after.start_step % 50 == 0
    combined = continued_metrics(killed, after)
    assert combined["train/loss"].steps == list(range(2, NUM_STEPS + 1, 2))
    for name, series in combined.items():
        assert len(set(series.steps)) == len(series.steps), f"{name} repeats a step"
