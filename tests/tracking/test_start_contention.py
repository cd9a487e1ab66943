"""Runs that start at the same instant on one new SQLite file or PostgreSQL schema all get in,
with distinct ids; errors that are not contention fail at once instead of waiting.

The first connection to a new SQLite file switches it to WAL, which needs the file to itself, and
SQLite answers "database is locked" at once (without waiting out its busy timeout) to the others:
a sweep with ``--parallel 3`` had a third of its starts refused before the switch was retried.
On PostgreSQL, processes creating the same tables race on the catalog. Here four processes,
released together by a barrier, start a run (tables, then the run row) in one fresh store after
another.
"""

from __future__ import annotations

import datetime
import multiprocessing
import sqlite3
import uuid
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from capreolus_opt.tracking import sql_observer, urls
from tests.tracking.tracking_helpers import POSTGRES_URL

N_PROCS = 4
EX_INFO = {"name": "contention", "base_dir": "/x", "sources": [], "repositories": [],
           "dependencies": ["numpy==2.0.0", "sacred==0.8.7"]}  # fmt: skip
HOST_INFO = {"hostname": "h", "cpu": "c", "os": ["Linux", "x"], "python_version": "3.11"}


def _start_in_each(store_urls: list[str], barrier, results) -> None:
    from capreolus_opt.tracking.sql_observer import SqlMetricsObserver

    for url in store_urls:
        observer = SqlMetricsObserver(url)
        barrier.wait(timeout=120)
        try:
            observer.check_reachable()
            start = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
            observer.started_event(EX_INFO, "train", HOST_INFO, start, {"seed": 0}, {}, None)
            results.put((url, "ok"))
        except Exception as exc:
            results.put((url, f"{type(exc).__name__}: {exc}"))
        finally:
            observer.close()


def _start_together(store_urls: list[str]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(N_PROCS), ctx.Queue()
    procs = [
        ctx.Process(target=_start_in_each, args=(store_urls, barrier, results))
        for _ in range(N_PROCS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=300) for _ in range(N_PROCS * len(store_urls))]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert [outcome for outcome in outcomes if outcome[1] != "ok"] == []
    for url in store_urls:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                ids = connection.execute(sa.text("SELECT run_id FROM run")).scalars().all()
                assert connection.execute(sa.text("SELECT count(*) FROM metrics")).scalar() == 0
        finally:
            engine.dispose()
        assert sorted(ids, key=int) == [str(i) for i in range(1, N_PROCS + 1)]


@pytest.mark.slow
def test_runs_starting_together_on_a_new_sqlite_file_all_get_in(tmp_path):
    stores = [f"sqlite:///{tmp_path}/r{i}.db" for i in range(10)]
    _start_together(stores)
    for i in range(10):
        with sqlite3.connect(tmp_path / f"r{i}.db") as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="CAPREOLUS_TEST_POSTGRES_URL is not set (CI sets it)")
def test_runs_starting_together_on_a_new_postgres_schema_all_get_in():
    schemas = [f"contention_{uuid.uuid4().hex[:12]}_{i}" for i in range(5)]
    admin = sa.create_engine(POSTGRES_URL)
    separator = "&" if "?" in POSTGRES_URL else "?"
    stores = [f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={s}')}" for s in schemas]
    try:
        with admin.begin() as connection:
            for schema in schemas:
                connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        _start_together(stores)
    finally:
        with admin.begin() as connection:
            for schema in schemas:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


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


def test_ids_continue_after_a_run_stored_under_a_name(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    ids = []
    for named in (False, False, True, False):
        observer = sql_observer.SqlMetricsObserver(url)
        observer.check_reachable()
        start = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        ids.append(observer.started_event(EX_INFO, "train", HOST_INFO, start, {}, {}, None))
        if named:  # what a plain Sacred SqlObserver with an explicit _id leaves behind
            observer.run.run_id = "baseline"
            observer.save()
        observer.close()
    assert ids == [1, 2, 3, 3]
