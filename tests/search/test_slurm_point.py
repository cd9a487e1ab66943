"""A Slurm sweep task reports its run's outcome as a dict (no Slurm needed: the run call is
replaced by a recorder)."""

from __future__ import annotations

import json

from capreolus_opt.launchers import slurm
from capreolus_opt.tracking import run as tracking_run
from capreolus_opt.tracking.run import RunInputError, RunOutcome


def _point(tmp_path) -> dict:
    return {
        "config": "c.gin",
        "bindings": ["A.x = 1"],
        "extra": ["B.y = 2"],
        "observers": ["file://runs"],
        "workdir": "wd",
        "state": str(tmp_path / "0.json"),
    }


def test_a_point_runs_through_run_tracked_and_keeps_its_outcome(tmp_path, monkeypatch):
    requests = []

    def fake(request, **kwargs):
        requests.append(request)
        return RunOutcome(request.run_uuid, "COMPLETED", 0, result={"eval/mrr@10": 0.5})

    monkeypatch.setattr(slurm, "_start_job", lambda: None)
    monkeypatch.setattr(tracking_run, "run_tracked", fake)
    result = slurm.sweep_point_job(_point(tmp_path))
    (request,) = requests
    assert request.gin_bindings == ["B.y = 2", "A.x = 1"] and request.workdir == "wd"
    assert "slurm" in request.info
    assert result["exit_code"] == 0 and result["run_uuid"] == request.run_uuid
    assert json.loads((tmp_path / "0.json").read_text()) == result
    assert slurm.sweep_point_job(_point(tmp_path)) == result  # requeued after finishing: done
    assert len(requests) == 1


def test_a_requeued_point_resumes_or_trains_afresh_when_its_run_was_never_recorded(
    tmp_path, monkeypatch
):
    (tmp_path / "0.json").write_text(json.dumps({"run_uuid": "a" * 32}))
    requests = []

    def fake(request, **kwargs):
        requests.append(request)
        if request.resume:
            raise RunInputError("no source holds a run with that UUID")
        return RunOutcome(request.run_uuid, "FAILED", 1, message="Traceback")

    monkeypatch.setattr(slurm, "_start_job", lambda: None)
    monkeypatch.setattr(tracking_run, "run_tracked", fake)
    result = slurm.sweep_point_job(_point(tmp_path))
    assert [r.resume for r in requests] == ["a" * 32, None]
    assert requests[0].gin_files == [] and requests[1].gin_files == ["c.gin"]
    assert result["status"] == "FAILED" and result["exit_code"] == 1


def test_waiting_ends_when_squeue_no_longer_knows_the_jobs(tmp_path, monkeypatch):
    """After MinJobAge Slurm forgets a finished job: squeue then fails with "Invalid job id"
    rather than listing nothing, and a sweep that polls late must still stop waiting. squeue's
    answer is stood in for here; tests/search/test_slurm.py waits on the real one."""
    import pickle
    import subprocess
    import types

    calls = []

    def squeue(argv, **kwargs):
        calls.append(argv)
        if len(calls) == 1:  # still running
            return subprocess.CompletedProcess(argv, 0, "7_0\n", "")
        return subprocess.CompletedProcess(argv, 1, "", "slurm_load_jobs error: Invalid job id")

    monkeypatch.setattr(slurm.subprocess, "run", squeue)
    result = tmp_path / "7_0_result.pkl"
    result.write_bytes(pickle.dumps(("success", {"exit_code": 0})))
    job = types.SimpleNamespace(job_id="7_0", paths=types.SimpleNamespace(result_pickle=result))
    assert slurm.wait_for([job], poll_s=0.01) == [("success", {"exit_code": 0})]
    assert len(calls) == 2 and calls[0][0] == "squeue"
