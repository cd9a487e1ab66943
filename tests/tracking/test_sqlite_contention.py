"""Runs that open one new SQLite file at the same instant all get through; real errors do not wait.

The first connection to a new file switches it to WAL, which needs the file to itself, and SQLite
answers "database is locked" at once (without waiting out its busy timeout) to the others. A
sweep with ``--parallel 3`` hit this on a third of its starts before the switch was retried.
Here four processes, released together by a barrier, open ten fresh files one after another.
"""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
import sqlalchemy as sa

from capreolus_opt.tracking import sql_observer, urls

N_PROCS = 4
N_FILES = 10


def _open_each(folder: str, barrier, results) -> None:
    from capreolus_opt.tracking.sql_observer import SqlMetricsObserver

    for i in range(N_FILES):
        observer = SqlMetricsObserver(f"sqlite:///{folder}/r{i}.db")
        barrier.wait(timeout=120)
        try:
            observer.check_reachable()
            results.put((i, "ok"))
        except Exception as exc:
            results.put((i, f"{type(exc).__name__}: {exc}"))
        finally:
            observer.close()


@pytest.mark.slow
def test_processes_opening_a_new_sqlite_file_together_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(N_PROCS), ctx.Queue()
    procs = [
        ctx.Process(target=_open_each, args=(str(tmp_path), barrier, results))
        for _ in range(N_PROCS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=300) for _ in range(N_PROCS * N_FILES)]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    failures = [outcome for outcome in outcomes if outcome[1] != "ok"]
    assert failures == []
    for i in range(N_FILES):
        with sqlite3.connect(tmp_path / f"r{i}.db") as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert {"run", "metrics", "run_result"} <= tables


def test_errors_that_are_not_contention_fail_without_retrying(tmp_path, monkeypatch):
    pauses = []
    monkeypatch.setattr(sql_observer.time, "sleep", pauses.append)
    observer = urls.observer_from_url(f"sqlite:///{tmp_path}/missing/dir/r.db")
    with pytest.raises(urls.ObserverUnreachableError, match="unable to open database file"):
        urls.check_reachable([observer])
    urls.close_observers([observer])
    assert pauses == []


@pytest.mark.parametrize(
    ("message", "contention"),
    [
        ("database is locked", True),
        ("database table is locked", True),
        ("UNIQUE constraint failed: run.run_id", True),
        ('duplicate key value violates unique constraint "pg_type_typname_nsp_index"', True),
        ('relation "metrics" already exists', True),
        ("deadlock detected", True),
        ("attempt to write a readonly database", False),
        ("unable to open database file", False),
        ('password authentication failed for user "u"', False),
    ],
)
def test_contention_is_told_from_other_database_errors(message, contention):
    wrapped = sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError(message))
    assert sql_observer._is_contention(wrapped) is contention
    assert sql_observer._is_contention(sqlite3.OperationalError(message)) is contention


def test_a_contended_start_is_retried_until_it_goes_through(monkeypatch):
    pauses, calls = [], []
    monkeypatch.setattr(sql_observer.time, "sleep", pauses.append)

    def flaky() -> str:
        calls.append(None)
        if len(calls) < 4:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert sql_observer._retry(flaky) == "done"
    assert len(calls) == 4 and len(pauses) == 3


def test_contention_that_outlasts_the_budget_raises(monkeypatch):
    monkeypatch.setattr(sql_observer, "_CONTENTION_BUDGET_S", 0.0)

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sql_observer._retry(locked)
