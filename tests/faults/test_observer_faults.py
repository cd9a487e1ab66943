"""An observer that fails mid-run, for real: a PostgreSQL server stopped (and started again, or
not) and a disk that fills (and frees again, or not) under FileStorage and SQLite, while the real
``capreolus-opt train`` runs. The training process is paused (SIGSTOP) around each fault so that
the fault lands mid-run on any machine speed.

Wanted: an observer that comes back holds every point and the final status; one that does not
makes ``train`` exit 3 naming it and what it misses, never says COMPLETED, never holds a partial
file; the other observer's record is complete either way.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.faults.fault_tools import (
    PgCluster,
    TrainProcess,
    can_mount_tmpfs,
    can_run_postgres,
    file_steps,
    fill,
    only_run_folder,
    smoke_args,
    sql_run_row,
    sql_steps,
    tmpfs,
    wait_until,
)

pytestmark = pytest.mark.slow
NO_PG, NO_TMPFS = can_run_postgres(), can_mount_tmpfs()


def _all_steps(num_steps: int) -> list[int]:
    return list(range(2, num_steps + 1, 2))


@pytest.fixture
def pg():
    cluster = PgCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


def _file_status(runs: Path) -> str:
    return json.loads((only_run_folder(runs) / "run.json").read_text())["status"]


@pytest.mark.skipif(NO_PG is not None, reason=str(NO_PG))
def test_postgres_restarted_mid_run_receives_every_point(tmp_path, pg):
    runs = tmp_path / "runs"
    args = smoke_args(200, "--observer", pg.url, "--observer", f"file://{runs}")
    proc = TrainProcess([*args, "--workdir", str(tmp_path / "w")], tmp_path)
    try:
        wait_until(lambda: len(sql_steps(pg.url)) >= 5, "points in PostgreSQL")
        proc.pause()
        pg.stop()
        proc.cont()
        down_at = len(file_steps(runs))
        wait_until(
            lambda: len(file_steps(runs)) >= down_at + 20, "training on with the server down"
        )
        proc.pause()
        pg.start()
        proc.cont()
        code, out = proc.wait()
    finally:
        proc.close()
    assert code == 0, out
    assert "cannot store the run" in out and "reconnected" in out
    assert sql_steps(pg.url) == file_steps(runs) == _all_steps(200)
    row = sql_run_row(pg.url)
    info = json.loads((only_run_folder(runs) / "info.json").read_text())
    assert row["status"] == "COMPLETED" and row["stop_time"] is not None
    assert row["info"]["run_uuid"] == info["run_uuid"]
    assert row["info"]["checkpoint_path"] == info["checkpoint_path"]  # the final info caught up


@pytest.mark.skipif(NO_PG is not None, reason=str(NO_PG))
def test_postgres_gone_for_good_exits_3_naming_it(tmp_path, pg):
    runs = tmp_path / "runs"
    args = smoke_args(100, "--observer", pg.url, "--observer", f"file://{runs}")
    proc = TrainProcess([*args, "--observer_wait", "1", "--workdir", str(tmp_path / "w")], tmp_path)
    try:
        wait_until(lambda: len(sql_steps(pg.url)) >= 3, "points in PostgreSQL")
        proc.pause()
        pg.stop()
        proc.cont()
        code, out = proc.wait()
    finally:
        proc.close()
    assert code == 3, out
    shown = "error: observer SqlMetricsObserver('postgresql+psycopg:///postgres?host="
    assert shown in out and f"port={pg.port}') did not store" in out
    assert "metric points" in out and "status" in out
    assert _file_status(runs) == "COMPLETED"  # the other observer is complete
    assert file_steps(runs) == _all_steps(100)
    pg.start()
    assert sql_run_row(pg.url)["status"] == "RUNNING"  # never told COMPLETED


def _witness_and_faulty(store: str, disk: Path, tmp_path: Path) -> dict:
    if store == "file":
        faulty, witness = f"file://{disk}/runs", f"sqlite:///{tmp_path}/witness.db"
        return {
            "faulty": faulty,
            "witness": witness,
            "faulty_steps": lambda: file_steps(disk / "runs"),
            "witness_steps": lambda: sql_steps(witness),
        }
    faulty, witness = f"sqlite:///{disk}/runs.db", f"file://{tmp_path}/runs"
    return {
        "faulty": faulty,
        "witness": witness,
        "faulty_steps": lambda: sql_steps(faulty),
        "witness_steps": lambda: file_steps(tmp_path / "runs"),
    }


@pytest.mark.skipif(NO_TMPFS is not None, reason=str(NO_TMPFS))
@pytest.mark.parametrize("frees", [True, False], ids=["frees", "stays_full"])
@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_disk_filling_mid_run(tmp_path, store, frees):
    num_steps = 300
    with tmpfs("4m") as disk:
        obs = _witness_and_faulty(store, disk, tmp_path)
        args = smoke_args(num_steps, "--observer", obs["faulty"], "--observer", obs["witness"])
        args += ["--observer_wait", "1", "--workdir", str(tmp_path / "w")]
        proc = TrainProcess(args, tmp_path)
        try:
            wait_until(lambda: len(obs["faulty_steps"]()) >= 5, "points on the small disk")
            proc.pause()
            filler = fill(disk)
            proc.cont()
            full_at = len(obs["witness_steps"]())
            wait_until(lambda: len(obs["witness_steps"]()) >= full_at + 30, "training, disk full")
            if frees:
                proc.pause()
                filler.unlink()
                proc.cont()
            code, out = proc.wait()
        finally:
            proc.close()
        assert obs["witness_steps"]() == _all_steps(num_steps)
        if frees:
            assert code == 0, out
            assert obs["faulty_steps"]() == _all_steps(num_steps)
            _assert_complete(store, disk)
        else:
            assert code == 3, out
            name = "FileStorageObserver" if store == "file" else "SqlMetricsObserver"
            full = "No space left on device" if store == "file" else "database or disk is full"
            assert f"error: observer {name}(" in out and full in out
            assert len(obs["faulty_steps"]()) < len(_all_steps(num_steps))
            _assert_intact_not_completed(store, disk)


def _assert_complete(store: str, disk: Path) -> None:
    if store == "file":
        assert _file_status(disk / "runs") == "COMPLETED"
    else:
        assert sql_run_row(f"sqlite:///{disk}/runs.db")["status"] == "COMPLETED"


def _assert_intact_not_completed(store: str, disk: Path) -> None:
    if store == "sqlite":
        connection = sqlite3.connect(disk / "runs.db")
        try:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            (status,) = connection.execute("SELECT status FROM run").fetchone()
        finally:
            connection.close()
        assert status == "RUNNING"
        return
    folder = only_run_folder(disk / "runs")
    for path in folder.glob("*.json"):
        json.loads(path.read_text())  # every JSON file parses: none is truncated
    assert not list(folder.glob(".*.tmp")), "temporary files left behind"
    assert _file_status(disk / "runs") == "RUNNING"
    for source in (disk / "runs" / "_sources").iterdir():
        assert source.stat().st_size > 0, source
