"""Observer URLs -> Sacred observers, with reachability checks and password redaction.

Accepted forms (``--observer URL`` on the command line):

==============================================  ============================================
``file://DIR`` (``file:///abs/dir``)            Sacred FileStorage folder
``sqlite:///PATH``                              :class:`SqlMetricsObserver` on a SQLite file
``postgresql://user[:pw]@host[:port]/db``       :class:`SqlMetricsObserver` (psycopg 3 driver)
``postgresql+psycopg:///db?host=/run/pg``       idem, explicit driver / Unix socket
``mongodb://[user:pw@]host[:port]/db``          Sacred MongoObserver (db defaults to ``sacred``)
==============================================  ============================================

Every password is registered with :data:`~capreolus_opt.tracking.redact.REDACTOR` when the URL
is parsed, and messages name observers only by their redacted URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from capreolus_opt.tracking.redact import REDACTOR, redact_url

SCHEMES = ("file", "sqlite", "postgresql", "mongodb")

# A Mongo observer that cannot reach its server should say so in seconds, not pymongo's 30 s.
MONGO_TIMEOUT_MS = 5000


class ObserverUnreachableError(RuntimeError):
    """An observer could not be reached or written before the run started."""


def observer_from_url(url: str):
    """Return a Sacred observer for ``url`` (see the module docstring for the forms).

    Raises:
        ValueError: the URL has no supported scheme, or lacks a path/database.
    """
    REDACTOR.add_url(url)
    shown = redact_url(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    base_scheme = scheme.split("+", 1)[0]
    if base_scheme == "file":
        return _file_observer(url, shown)
    if base_scheme in ("sqlite", "postgresql", "postgres"):
        return _sql_observer(url, scheme, shown)
    if base_scheme in ("mongodb", "mongodb+srv") or scheme == "mongodb+srv":
        return _mongo_observer(url, shown)
    raise ValueError(
        f"Unsupported observer URL {shown!r}: expected one of "
        "file://DIR, sqlite:///PATH, postgresql://user@host/db, mongodb://host:port/db."
    )


def observers_from_urls(urls: Sequence[str]) -> list:
    """Parse every URL (all are validated before any observer is returned)."""
    return [observer_from_url(url) for url in urls]


def check_reachable(observers: Sequence) -> None:
    """Contact every observer once (create folder, connect, ping) before the run starts.

    Raises:
        ObserverUnreachableError: naming the observer (password masked) and the cause.
    """
    for observer in observers:
        probe = getattr(observer, "check_reachable", None)
        if probe is None:
            continue
        try:
            probe()
        except Exception as exc:  # any driver error means "cannot record this run"
            cause = REDACTOR.redact(f"{type(exc).__name__}: {exc}")
            raise ObserverUnreachableError(
                f"Observer {observer!r} is not reachable, so the run was not started: {cause}"
            ) from None


def close_observers(observers: Sequence) -> None:
    """Release the connections held by ``observers`` (those that hold any)."""
    for observer in observers:
        close = getattr(observer, "close", None)
        if close is not None:
            close()


def _file_observer(url: str, shown: str):
    from capreolus_opt.tracking.observers import OwnIdFileStorageObserver

    parts = urlsplit(url)
    # file://runs is a relative folder (netloc "runs"); file:///abs/runs an absolute one.
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise ValueError(f"Observer URL {shown!r} names no folder: expected file://DIR.")
    return OwnIdFileStorageObserver(path)


def _sql_observer(url: str, scheme: str, shown: str):
    from capreolus_opt.tracking.sql_observer import SqlMetricsObserver

    if scheme in ("postgresql", "postgres"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; we ship psycopg 3.
        url = "postgresql+psycopg" + url[len(scheme) :]
    rest = url.split("://", 1)[1]
    if scheme.startswith("sqlite") and rest.strip("/") == "":
        raise ValueError(f"Observer URL {shown!r} names no database file: sqlite:///PATH.")
    if not scheme.startswith("sqlite") and not urlsplit(url).path.strip("/"):
        raise ValueError(f"Observer URL {shown!r} names no database: expected .../DBNAME.")
    return SqlMetricsObserver(url)


def _mongo_observer(url: str, shown: str):
    from capreolus_opt.tracking.observers import OwnIdMongoObserver

    db_name = urlsplit(url).path.strip("/") or "sacred"
    observer = OwnIdMongoObserver(
        url=url, db_name=db_name, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS
    )
    observer.display_url = shown
    return observer
