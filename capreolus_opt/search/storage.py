"""``--storage URL`` -> an Optuna storage, refusing what Optuna advises against.

==============================================  ============================================
``postgresql://user[:pw]@host[:port]/db``       RDB storage (psycopg 3): workers on several
``postgresql+psycopg:///db?host=/run/pg``       machines share one study
``journal:///abs/study.log``, ``journal://rel`` Optuna's journal file: workers on one machine
``sqlite:///PATH``                              one worker only
==============================================  ============================================

Optuna's documentation advises against SQLite for parallel workers (a file lock serialises every
write, and concurrent workers fail with "database is locked"), so :func:`open_storage` refuses it
when ``parallel`` is true. Errors name the storage by its URL with credentials masked
(:func:`capreolus_opt.storage.mask_url`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from capreolus_opt.optional import require
from capreolus_opt.storage import mask_url

FORMS = "postgresql://user@host/db, journal:///path/study.log or sqlite:///PATH"


class StorageError(ValueError):
    """The storage URL is malformed or not usable for this search."""


def storage_kind(url: str) -> str:
    """``"postgresql"``, ``"journal"`` or ``"sqlite"``; raises :class:`StorageError` otherwise."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base = scheme.split("+", 1)[0]
    if base in ("postgresql", "postgres"):
        return "postgresql"
    if base in ("journal", "sqlite"):
        return base
    raise StorageError(f"unsupported --storage {mask_url(url)!r}: expected {FORMS}")


def _journal_path(url: str) -> str:
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise StorageError(
            f"--storage {mask_url(url)!r} names no file: expected journal:///path/study.log"
        )
    return path


def _rdb_url(url: str, kind: str) -> str:
    if kind == "postgresql":
        scheme, rest = url.split("://", 1)
        if "+" not in scheme:  # SQLAlchemy's default driver is psycopg2; we ship psycopg 3
            url = "postgresql+psycopg://" + rest
        if not urlsplit(url).path.strip("/"):
            raise StorageError(f"--storage {mask_url(url)!r} names no database: .../DBNAME")
    elif url.split("://", 1)[1].strip("/") == "":
        raise StorageError(f"--storage {url!r} names no database file: sqlite:///PATH")
    return url


def storage_file(url: str) -> str | None:
    """The file a journal or SQLite storage lives in (None for a server); opening the storage
    would create it, so readers check it exists first."""
    kind = storage_kind(url)
    if kind == "journal":
        return _journal_path(url)
    if kind == "sqlite":
        # SQLAlchemy: sqlite:///rel.db is relative, sqlite:////abs.db absolute
        return unquote(_rdb_url(url, kind).split("://", 1)[1].split("?", 1)[0][1:])
    return None


def check_storage_url(url: str, *, parallel: bool) -> str:
    """Validate ``url`` for a search with several workers (``parallel``) or one; return its kind.

    Raises:
        StorageError: unknown form, or SQLite with parallel workers.
    """
    kind = storage_kind(url)
    if kind == "sqlite" and parallel:
        raise StorageError(
            f"--storage {url!r}: SQLite cannot serve parallel workers (Optuna advises against "
            "it: concurrent writes fail with 'database is locked'); use a PostgreSQL URL for "
            "workers on several machines or journal:///path/study.log on one machine"
        )
    if kind == "journal":
        _journal_path(url)
    else:
        _rdb_url(url, kind)
    return kind


def open_storage(url: str, *, parallel: bool = False) -> Any:
    """Return the Optuna storage for ``url`` (see the module docstring)."""

    kind = check_storage_url(url, parallel=parallel)
    if kind == "journal":
        journal = require("optuna.storages.journal", "tune")
        return journal.JournalStorage(journal.JournalFileBackend(_journal_path(url)))
    url = _rdb_url(url, kind)
    if kind == "postgresql":
        return _postgres_storage(url)
    return _rdb_storage(url)


def _rdb_storage(url: str) -> Any:
    optuna = require("optuna", "tune")
    # pool_pre_ping: a worker that waited long (one trial is minutes) finds its connection alive.
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


# Any constant; PostgreSQL advisory locks are keyed by a 64-bit integer per database.
_SCHEMA_LOCK = 0x63617072_6F707401


def _postgres_storage(url: str) -> Any:
    """RDB storage, opened while holding an advisory lock: Optuna creates its schema when the
    storage opens, and workers opening a fresh database at once collide on CREATE TYPE
    (UniqueViolation on pg_type; seen with two workers here)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK})
            try:
                return _rdb_storage(url)
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK})
    finally:
        engine.dispose()
