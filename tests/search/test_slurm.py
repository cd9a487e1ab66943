"""``--launcher slurm`` on a real single-node Slurm cluster (.ci/slurm_up.sh starts it and .ci/run
sets CAPREOLUS_TEST_SLURM): sweep points and search workers become a job array submitted through
sbatch, their runs are recorded, and a task sent SIGTERM checkpoints, requeues itself and resumes
the same run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from capreolus_opt import load_runs
from capreolus_opt.launchers import slurm
from tests.search.search_helpers import cli_env, scratch_configs, study_trials

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("CAPREOLUS_TEST_SLURM"),
        reason="CAPREOLUS_TEST_SLURM is not set (.ci/run starts Slurm and sets it)",
    ),
]
SLURM_FLAGS = ["--launcher", "slurm", "--slurm-cpus", "1", "--slurm-time", "30",
               "--slurm-folder", "jobs"]  # fmt: skip


def cli(*args: str, cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", *args],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _info(run) -> dict:
    source = run.sources[0]
    return json.loads((Path(source) / run.sacred_ids[source] / "info.json").read_text())


def _array_id(stdout: str) -> str:
    return re.search(r"submitted Slurm job array (\d+)", stdout).group(1)


def test_a_two_point_sweep_runs_as_a_slurm_job_array(tmp_path):
    config = scratch_configs(tmp_path)
    proc = cli("sweep", config, "--grid", "LR=[1e-3, 3e-3]", "--observer", "file://runs",
               *SLURM_FLAGS, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    array = _array_id(proc.stdout)
    assert "2 of 2 points succeeded" in proc.stdout
    runs = load_runs(str(tmp_path / "runs"))
    assert sorted(r.hparams["AdamMultilr.learning_rate"] for r in runs) == [1e-3, 3e-3]
    assert all(r.status == "COMPLETED" for r in runs)
    tasks = sorted(_info(r)["slurm"]["array_task_id"] for r in runs)
    assert tasks == ["0", "1"] and {_info(r)["slurm"]["array_job_id"] for r in runs} == {array}


def test_two_tune_workers_run_as_a_slurm_job_array(tmp_path):
    config = scratch_configs(tmp_path)
    storage = f"journal://{tmp_path}/study.log"
    proc = cli("tune", config, "--space", "LR=float(1e-4, 1e-2, log)", "--study", "sl",
               "--storage", storage, "--n-trials", "2", "--workers", "2", "--sampler", "random",
               "--observer", "file://runs", *SLURM_FLAGS, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "(2 workers)" in proc.stdout
    trials = [t for t in study_trials("sl", storage) if "stopped_reason" not in t.user_attrs]
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    runs = {r.run_uuid: r for r in load_runs(str(tmp_path / "runs"))}
    for trial in trials:
        run = runs[trial.user_attrs["run_uuid"]]
        assert run.status == "COMPLETED" and _info(run)["tune"]["trial"] == trial.number


def _squeue(array: str) -> str:
    """The array's tasks as squeue lists them (``slurm.squeue``: "" once it lists none or has
    purged them); a failing squeue is asked again, for up to 30 s."""
    for _ in range(30):
        listed = slurm.squeue([array], "%i %T %r")
        if listed is not None:
            return listed
        time.sleep(1)
    raise AssertionError(f"squeue kept failing for 30 s on job {array}")


def test_a_task_sent_sigterm_checkpoints_requeues_and_resumes_its_run(tmp_path):
    config = scratch_configs(tmp_path, "train.num_steps = 400\n")
    proc = cli("sweep", config, "--grid", "LR=[3e-3]", "--observer", "file://runs",
               "--workdir_root", "wd", "--no-wait", *SLURM_FLAGS, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    array = _array_id(proc.stdout)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "wd").glob("*/checkpoint")):
        assert time.monotonic() < deadline and _squeue(array), "the task never checkpointed"
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=TERM", array], check=True)
    while "PENDING" not in _squeue(array):  # the task requeues itself after its checkpoint
        assert time.monotonic() < deadline and _squeue(array), "the task was not requeued"
        time.sleep(0.5)
    # Slurm holds a requeued job for ~2 minutes (EligibleTime); release it, as an admin may, but
    # not within the second of the requeue: slurmd revoked the first start's credential then, at
    # one-second resolution, and kills a start whose credential is from that same second ("Job
    # credential revoked"; the job ends FAILED without running).
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={array}", "StartTime=now"], check=True)
    while _squeue(array):
        assert time.monotonic() < deadline, "the requeued task did not finish"
        time.sleep(1)
    runs = sorted(load_runs(str(tmp_path / "runs")), key=lambda r: r.start_time)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                     for p in sorted((tmp_path / "jobs").glob("*/*_log.*")))  # fmt: skip
    assert [r.status for r in runs] == ["INTERRUPTED", "COMPLETED"], logs
    assert "Logging error" not in logs  # submitit logs after the run, through the real stream
    first, second = runs
    assert second.resumed_from == first.run_uuid
    assert _info(second)["slurm"]["restart_count"] == "1"
    steps = first.metrics["train/loss"].steps + second.metrics["train/loss"].steps
    assert steps == list(range(4, 401, 4))  # together the two records have every point, once
