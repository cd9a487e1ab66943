"""Four runs started at once into the same FileStorage folder, SQLite file and PostgreSQL
database all complete, with four distinct and complete records in each store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tracking.tracking_helpers import (
    POSTGRES_URL,
    expected_points,
    file_metrics,
    file_runs,
    sql_metrics,
    write_gin,
)

SCRIPT = str(Path(__file__).with_name("fake_cli.py"))
N_RUNS = 4


@pytest.mark.slow
def test_four_concurrent_runs_into_shared_stores(tmp_path):
    observers = ["file://fs", f"sqlite:///{tmp_path}/r.db"]
    if POSTGRES_URL:  # CI sets it; without it the file and SQLite stores are still checked
        observers.append(POSTGRES_URL)
    # A short sleep per step keeps the four runs overlapping (heartbeats, metric writes).
    gin = write_gin(tmp_path / "a.gin", steps=6, sleep=0.05)
    argv = [sys.executable, SCRIPT, gin, "--seed", "0"]
    for url in observers:
        argv += ["--observer", url]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    procs = [
        subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(N_RUNS)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    run_dirs = file_runs(tmp_path / "fs")
    assert [d.name for d in run_dirs] == ["1", "2", "3", "4"]
    uuids = set()
    for run_dir in run_dirs:
        assert json.loads((run_dir / "run.json").read_text())["status"] == "COMPLETED"
        assert file_metrics(run_dir) == expected_points(range(1, 7))
        uuids.add(json.loads((run_dir / "info.json").read_text())["run_uuid"])
    assert len(uuids) == N_RUNS
    assert uuids == {o.decode().split()[1] for o, _ in outputs}
    for url in observers[1:]:
        for run_uuid in uuids:
            assert sql_metrics(url, run_uuid) == expected_points(range(1, 7))
