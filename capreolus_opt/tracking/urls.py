"""Observer URLs -> Sacred observers, with reachability checks.

The URL forms, their rules and masking live in :mod:`capreolus_opt.storage` (one parser for
writers, readers, ``--resume`` and ``sweep``); this module only builds the observer for each
parsed location. Messages name observers by their masked URL.
"""

from __future__ import annotations

from collections.abc import Sequence

from capreolus_opt.storage import MONGO_TIMEOUT_MS, Location, LocationError, parse_location
from capreolus_opt.storage.locations import SQLITE_BUSY_TIMEOUT_S


class ObserverUnreachableError(RuntimeError):
    """An observer could not be reached or written before the run started."""


def observer_from_url(url: str):
    """Return a Sacred observer for ``url`` (forms: :mod:`capreolus_opt.storage`).

    Raises:
        LocationError (a ValueError): the URL is malformed or of an unsupported kind.
    """
    location = parse_location(url)
    if location.kind == "file":
        return _file_observer(location)
    if location.kind == "sql":
        from capreolus_opt.tracking.sql_observer import SqlMetricsObserver

        observer = SqlMetricsObserver(location.target)
        observer.display_url = location.shown  # as the user wrote it, credentials masked
        return observer
    return _mongo_observer(location)


def observers_from_urls(urls: Sequence[str]) -> list:
    """Parse every URL (all are validated before any observer is returned)."""
    locations = [parse_location(url) for url in urls]
    return [observer_from_url(location.url) for location in locations]


def check_reachable(observers: Sequence) -> None:
    """Contact every observer once (create folder, connect, ping) before the run starts.

    Raises:
        ObserverUnreachableError: naming the observer (credentials masked) and the cause.
    """
    from capreolus_opt.storage import mask_urls

    for observer in observers:
        probe = getattr(observer, "check_reachable", None)
        if probe is None:
            continue
        try:
            probe()
        except Exception as exc:  # any driver error means "cannot record this run"
            cause = mask_urls(f"{type(exc).__name__}: {exc}")
            raise ObserverUnreachableError(
                f"Observer {observer!r} is not reachable, so the run was not started: {cause}"
            ) from None


def close_observers(observers: Sequence) -> None:
    """Release the connections held by ``observers`` (those that hold any)."""
    for observer in observers:
        close = getattr(observer, "close", None)
        if close is not None:
            close()


def _file_observer(location: Location):
    from capreolus_opt.tracking.observers import OwnIdFileStorageObserver

    return OwnIdFileStorageObserver(location.target)


def _mongo_observer(location: Location):
    from capreolus_opt.tracking.observers import OwnIdMongoObserver

    observer = OwnIdMongoObserver(
        url=location.url, db_name=location.database, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS
    )
    observer.display_url = location.shown
    return observer


__all__ = [
    "LocationError",
    "ObserverUnreachableError",
    "SQLITE_BUSY_TIMEOUT_S",
    "check_reachable",
    "close_observers",
    "observer_from_url",
    "observers_from_urls",
]
