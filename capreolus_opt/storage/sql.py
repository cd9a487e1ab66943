"""The SQL side of run storage: engines with our timeouts, and the schema both sides use.

Sacred's ``SqlObserver`` creates its tables (``run``, ``experiment``, ``host``, ...) from its own
``Base.metadata``; Sacred drops metrics and stores ``result`` in a Float column, so our observer
adds ``metrics`` and ``run_result``. :data:`SCHEMA` declares those two beside a view of the
``run`` columns we read, so that the observer that writes (``tracking/sql_observer.py``) and the
reader (``records/sql.py``) use one definition.
"""

from __future__ import annotations

import os
import sqlite3

import sqlalchemy as sa

from capreolus_opt.storage.locations import (
    POSTGRES_CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
    Location,
    LocationError,
)


def sql_engine(location: Location, *, read_only: bool = False) -> sa.engine.Engine:
    """An SQLAlchemy engine for an ``sql`` location, with our timeouts.

    ``read_only`` opens SQLite files read-only and never creates one (a reader that mistyped a
    file name must not leave an empty database behind): a missing file raises ``LocationError``.
    """
    if location.kind != "sql":
        raise LocationError(f"{location.shown!r} is not an SQL database.")
    if location.is_sqlite:
        path = location.sqlite_path
        if read_only:
            if not os.path.isfile(path):
                raise LocationError(f"no SQLite database at {path!r} ({location.shown}).")
            uri = "file:" + os.path.abspath(path) + "?mode=ro"
            return sa.create_engine("sqlite://", creator=lambda: _sqlite_read_only(uri))
        return sa.create_engine(location.target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    return sa.create_engine(
        location.target, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    )


def _sqlite_read_only(uri: str) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)


# --- the SQL schema ------------------------------------------------------------------------------
SCHEMA = sa.MetaData()

#: The columns of Sacred's ``run`` table that the reader uses (Sacred's ``Base.metadata``
#: creates the table; this is a view of it, never created from here).
run_table = sa.Table(
    "run",
    SCHEMA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.String(24)),
    sa.Column("status", sa.String(16)),
    sa.Column("start_time", sa.DateTime),
    sa.Column("heartbeat", sa.DateTime),
    sa.Column("stop_time", sa.DateTime),
    sa.Column("config", sa.Text),
    sa.Column("info", sa.Text),
    sa.Column("result", sa.Float),
)

metrics_table = sa.Table(
    "metrics",
    SCHEMA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("run.id"), nullable=False, index=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("timestamp", sa.DateTime),
)

#: ``run.result`` is a Float column in Sacred's schema; our result is a dict, stored as JSON.
result_table = sa.Table(
    "run_result",
    SCHEMA,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("run.id"), primary_key=True),
    sa.Column("result", sa.Text),
)

#: The tables this project adds to Sacred's (what the observer creates besides Sacred's own).
OUR_TABLES = (metrics_table, result_table)
