"""Sacred's SQL observer, extended to store metrics and results, on SQLite and PostgreSQL.

Sacred 0.8.7's ``SqlObserver`` records runs but silently drops every metric (it has no
``log_metrics``), stores ``result`` in a Float column (our result is a dict of floats, which the
driver refuses), allocates run ids as ``max + 1`` (concurrent runs collide on the unique
``run_id``), and declares ``VARCHAR(n)`` columns that PostgreSQL enforces (a long ``base_dir``
or CPU name fails the insert). :class:`SqlMetricsObserver` keeps Sacred's schema and adds:

- ``metrics(id, run_id -> run.id, name, step, value, timestamp)``: one row per logged point;
- ``run_result(run_id -> run.id, result)``: the run's result as JSON text;

(both declared once, in :mod:`capreolus_opt.storage.sql`, which the reader uses too) and retries
the run insert on conflicts, so several processes can share one database.

Speed: every Sacred event is one commit. With SQLite's default rollback journal each commit
syncs the disk several times (`benchmarks/tracking_overhead.py` measures the cost), so SQLite files
are opened in WAL mode with ``synchronous=NORMAL``: a commit appends to the log without a
sync. A process crash loses nothing committed; an OS crash or power cut can lose the last
commits (never corrupts the file). WAL keeps concurrent writers safe on a local disk (not on a
network filesystem). Tables are created once per observer (a cheap existence check when they
exist), not again at every run start as Sacred does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sacred.observers import SqlObserver
from sacred.observers.sql_bases import Artifact, Base, Experiment, Host, Run
from sacred.serializer import flatten

from capreolus_opt.records import status as run_status
from capreolus_opt.storage import parse_location
from capreolus_opt.storage.sql import OUR_TABLES, SCHEMA, metrics_table, result_table, sql_engine

# How long a run start waits for other processes sharing the database (lock holders, a race to
# create the tables, a concurrent run taking the same id) before it gives up.
_CONTENTION_BUDGET_S = 60.0
_T = TypeVar("_T")
# After a failed store, wait this long before the next try (beats can come faster).
_RETRY_EVERY_S = 1.0
_LOG = logging.getLogger("capreolus_opt.run")
_CONTENTION_MARKERS = (
    "locked", "busy", "already exists", "duplicate key", "unique constraint", "deadlock",
    "could not serialize",
)  # fmt: skip


def _is_contention(exc: BaseException) -> bool:
    """True for errors another process sharing the database causes, and that pass if retried.

    SQLite: "database is locked"/"busy", or "UNIQUE constraint failed" when two runs took one
    id. PostgreSQL: two processes creating one table ("already exists", "duplicate key" on the
    catalog), two runs taking one id ("duplicate key"), deadlocks.
    A read-only file, a missing folder or a refused login are not contention: they fail at once.
    """
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(marker in text for marker in _CONTENTION_MARKERS)


def _retry(action: Callable[[], _T], on_retry: Callable[[], None] | None = None) -> _T:
    """Call ``action`` until it raises no contention error or the contention budget is spent.

    The pause is random (20-200 ms) so that processes that collided do not collide again.
    """
    deadline = time.monotonic() + _CONTENTION_BUDGET_S
    while True:
        try:
            return action()
        except (sqlite3.Error, sa.exc.DBAPIError) as exc:
            if on_retry is not None:
                on_retry()
            if not _is_contention(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(random.uniform(0.02, 0.2))


def _fit(value: Any, length: int) -> Any:
    """Trim a string to a VARCHAR(length) column, keeping the end (paths differ at the end)."""
    if isinstance(value, str) and len(value) > length:
        return value[-length:]
    return value


def _sqlite_wal(dbapi_connection: Any, connection_record: Any) -> None:
    """Connect hook: WAL journal, no disk sync per commit (see the module docstring).

    WAL is a property of the file, so only the first connection to a new file switches it.
    That switch needs the file to itself, and SQLite answers "database is locked" at once
    (without waiting out the busy timeout) when another process holds it, as happens when a
    sweep starts several runs on a new file together: the switch is retried, and skipped once
    another process has made it.
    """
    cursor = dbapi_connection.cursor()

    def ensure_wal() -> None:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")

    try:
        _retry(ensure_wal)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _string_limit(column: sa.Column) -> int | None:
    return getattr(column.type, "length", None)


class SqlMetricsObserver(SqlObserver):
    """``SqlObserver`` that also stores metrics and dict results; safe under concurrent runs.

    Args:
        url: an SQLAlchemy URL (``sqlite:///runs.db``,
            ``postgresql+psycopg://user@host/db``).
        priority: Sacred observer priority.
    """

    final_wait_s = 30.0  # how long a final event retries an unreachable server

    def __init__(self, url: str, *, priority: int = 40) -> None:
        from threading import Lock, RLock

        from sqlalchemy.orm import scoped_session, sessionmaker

        engine = sql_engine(parse_location(url))
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_wal)
        # Same state as SqlObserver.__init__ (a thread-local session: IDSIA/sacred issues/275).
        self.engine = engine
        self.session = scoped_session(sessionmaker(bind=engine))
        self.priority = priority
        self.run = None
        self.lock = Lock()
        self.display_url = engine.url.render_as_string(hide_password=True)
        self._tables_ready = False  # created (or found) once per observer, not at every start
        self._sync_lock = RLock()
        self._pk: int | None = None
        self._run_id = ""
        self._rows: list[dict[str, Any]] = []  # metric points not yet stored
        self._row: dict[str, Any] = {}  # run-row columns not yet stored
        self._result: str | None = None
        self._artifacts: list[dict[str, Any]] = []
        self._lost: list[str] = []
        self._error: str | None = None
        self._next_try = 0.0

    def check_reachable(self) -> None:
        """Open one connection and create the tables if needed; raise on failure."""
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        self._create_tables()

    def close(self) -> None:
        """Release the session and the engine's pooled connections."""
        with contextlib.suppress(Exception):  # a connection the server dropped cannot roll back
            self.session.remove()
        self.engine.dispose()

    def _create_tables(self) -> None:
        if self._tables_ready:
            return
        # Two processes creating the same table on PostgreSQL: one loses the race on the
        # catalog's unique index; on SQLite one waits for the other's lock. The tables exist on
        # a later attempt.
        _retry(lambda: Base.metadata.create_all(self.engine))
        _retry(lambda: SCHEMA.create_all(self.engine, tables=OUR_TABLES))
        self._tables_ready = True

    def _add_event(
        self, ex_info, command, host_info, config, meta_info, _id, status, **kwargs
    ) -> Any:
        """Insert the run with the next free id, retrying when a concurrent run took it."""
        ex_info = dict(ex_info, base_dir=_fit(ex_info.get("base_dir"), 64))
        host_info = dict(host_info)
        for key in ("hostname", "cpu"):
            host_info[key] = _fit(host_info.get(key), _string_limit(Host.__table__.c[key]))
        command = _fit(command, _string_limit(Run.__table__.c.command))
        self._create_tables()
        _id = _retry(
            lambda: self._insert_run(
                ex_info, command, host_info, config, meta_info, status, **kwargs
            ),
            on_retry=self.session.rollback,
        )
        # From here on, rows are written by _sync with these keys (the ORM object is not used:
        # after a failed commit it would need the server to reload its attributes).
        self._pk, self._run_id = self.run.id, str(_id)
        self.session.commit()  # reading .id began a transaction: release its connection now
        return _id

    def _insert_run(self, ex_info, command, host_info, config, meta_info, status, **kwargs) -> Any:
        """Sacred's ``SqlObserver._add_event`` minus its ``create_all`` (done once, above).

        The id is one more than the newest run's, from 1 (FileStorage's numbering; Sacred's
        own gives 0, 2, 3, ... because it adds 1 to the row key); a run that lost the race for an
        id is retried by ``_add_event`` with the next one.
        ``no_autoflush``: Sacred's ``get_or_create`` queries while the new Experiment links
        already-stored Dependency rows; an autoflush then warns (SAWarning) and skips.
        """
        with self.session.no_autoflush:
            sql_exp = Experiment.get_or_create(ex_info, self.session)
            sql_host = Host.get_or_create(host_info, self.session)
            last = self.session.query(Run).order_by(Run.id.desc()).first()
            if last is None:
                _id = 1
            elif last.run_id.isdigit():
                _id = int(last.run_id) + 1
            else:  # the newest run was stored under a name by another tool: scan the numbers
                numbers = [int(r) for (r,) in self.session.query(Run.run_id) if r.isdigit()]
                _id = max(numbers, default=0) + 1
            self.run = Run(
                run_id=str(_id),
                config=json.dumps(flatten(config)),
                command=command,
                priority=meta_info.get("priority", 0),
                comment=meta_info.get("comment", ""),
                experiment=sql_exp,
                host=sql_host,
                status=status,
                **kwargs,
            )
            self.session.add(self.run)
            self.save()
        return _id

    # --- events after the start: buffered, never raised into Sacred -------------------------
    # Sacred drops an observer for the rest of the run after its first exception, so a server
    # that is down for a while would lose everything after it. Each event below only updates what
    # the row should hold (self._row), the points not yet stored (self._rows), the result and the
    # artifacts, then tries one transaction that stores all of it; on failure the transaction is
    # rolled back, pooled connections are dropped and the next event (at most once a second)
    # tries again with everything accumulated. A final event retries for final_wait_s seconds.

    def heartbeat_event(self, info, captured_out, beat_time, result) -> None:
        """Store info/output/heartbeat; a dict result goes to ``run_result``."""
        with self._sync_lock:
            self._row.update(
                info=json.dumps(flatten(dict(info))),  # a copy: see FileStorage's heartbeat
                captured_out=captured_out,
                heartbeat=beat_time,
                result=self._float_or_none(result),
            )
            self._set_result(result)
            self._sync()

    def log_metrics(self, metrics_by_name: dict[str, dict], info: dict) -> None:
        """Queue every point of ``metrics_by_name`` (Sacred's linearised form); store them."""
        with self._sync_lock:
            self._rows.extend(
                {
                    "run_id": self._pk,
                    "name": name,
                    "step": int(step),
                    "value": float(value),
                    "timestamp": timestamp,
                }
                for name, series in metrics_by_name.items()
                for step, value, timestamp in zip(
                    series["steps"], series["values"], series["timestamps"], strict=True
                )
            )
            self._sync()

    def artifact_event(self, name, filename, metadata=None, content_type=None) -> None:
        """Store the artifact's bytes (read now: the file may be temporary)."""
        with self._sync_lock:
            with open(filename, "rb") as f:
                content = f.read()
            self._artifacts.append(
                {"filename": _fit(name, 64), "content": content, "run_id": self._run_id}
            )
            self._sync()

    def resource_event(self, filename) -> None:
        """Sacred's resource link; a failure is reported by :meth:`missing`, not raised."""
        with self._sync_lock:
            try:
                super().resource_event(filename)
            except Exception as exc:
                self.session.rollback()
                self._lost.append(f"resource {filename}")
                self._report(exc)

    def completed_event(self, stop_time, result) -> None:
        """Mark the run COMPLETED and store its result."""
        self._set_result(result)
        self._final(
            stop_time=stop_time, result=self._float_or_none(result), status=run_status.COMPLETED
        )

    def interrupted_event(self, interrupt_time, status) -> None:
        """Mark the run INTERRUPTED (or Sacred's status)."""
        self._final(stop_time=interrupt_time, status=status)

    def failed_event(self, fail_time, fail_trace) -> None:
        """Mark the run FAILED with its trace."""
        self._final(stop_time=fail_time, fail_trace="\n".join(fail_trace), status=run_status.FAILED)

    def missing(self) -> str | None:
        """What the stored run still lacks after the final event (None when complete)."""
        with self._sync_lock:
            parts = []
            if self._rows:
                parts.append(f"{len(self._rows)} metric points")
            if self._row:
                parts.append("run row fields " + ", ".join(sorted(self._row)))
            if self._result is not None:
                parts.append("the result")
            if self._artifacts:
                parts.append(f"{len(self._artifacts)} artifacts")
            parts.extend(self._lost)
            if not parts:
                return None
            return (
                f"{self!r} did not store {'; '.join(parts)} of run {self._run_id} "
                f"(last error: {self._error})"
            )

    def save(self) -> None:
        """Commit; on error roll back so the session stays usable, then re-raise."""
        with self.lock:
            try:
                self.session.commit()
            except Exception:
                self.session.rollback()
                raise

    def _final(self, **row: Any) -> None:
        with self._sync_lock:
            self._row.update(row)
            deadline = time.monotonic() + self.final_wait_s
            while not self._sync(force=True) and time.monotonic() < deadline:
                time.sleep(0.5)

    def _set_result(self, result: Any) -> None:
        if result is not None:
            self._result = json.dumps(flatten(result))

    def _sync(self, force: bool = False) -> bool:
        """Store everything pending in one transaction; True when nothing is left pending."""
        if not (self._rows or self._row or self._result is not None or self._artifacts):
            return True
        if not force and time.monotonic() < self._next_try:
            return False
        try:
            with self.engine.begin() as conn:
                if self._rows:
                    conn.execute(metrics_table.insert(), self._rows)
                if self._artifacts:
                    conn.execute(Artifact.__table__.insert(), self._artifacts)
                if self._result is not None:
                    conn.execute(result_table.delete().where(result_table.c.run_id == self._pk))
                    conn.execute(
                        result_table.insert(), [{"run_id": self._pk, "result": self._result}]
                    )
                if self._row:
                    runs = Run.__table__
                    conn.execute(runs.update().where(runs.c.id == self._pk).values(**self._row))
        except Exception as exc:  # any driver error: keep everything, try again later
            self._report(exc)
            with contextlib.suppress(Exception):
                self.engine.dispose()
            self._next_try = time.monotonic() + _RETRY_EVERY_S
            return False
        self._rows, self._row, self._result, self._artifacts = [], {}, None, []
        if self._error is not None:
            _LOG.warning("observer %r reconnected and stored everything it had buffered", self)
            self._error = None
        return True

    def _report(self, exc: BaseException) -> None:
        first = self._error is None
        self._error = f"{type(exc).__name__}: {str(getattr(exc, 'orig', None) or exc).strip()}"
        if first:
            _LOG.warning(
                "observer %r cannot store the run (%s); buffering %d points and retrying at "
                "every beat", self, self._error, len(self._rows),
            )  # fmt: skip

    @staticmethod
    def _float_or_none(result: Any) -> float | None:
        return float(result) if isinstance(result, int | float) else None

    def __repr__(self) -> str:
        return f"SqlMetricsObserver({self.display_url!r})"
