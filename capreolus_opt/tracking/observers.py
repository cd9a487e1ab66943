"""Sacred's FileStorage and Mongo observers, each numbering its own runs.

Sacred gives every observer the id that the highest-priority observer chose (SQL numbers from 0,
file and Mongo from 1, DESIGN.md §5). With a FileStorage folder and an SQL database together, the
folder is then asked to create ``runs/<sql id>``, which fails as soon as that number already
exists there (and Mongo refuses a duplicate ``_id`` the same way). Runs are identified across
observers by our own ``info.run_uuid``, so each observer here ignores the id it is handed and
allocates the next free one in its own store, race-free (mkdir / unique index retries).
"""

from __future__ import annotations

from typing import Any

from sacred.observers import FileStorageObserver, MongoObserver


class _OwnIds:
    """Mixin: the observer allocates its own run id instead of taking the one Sacred passes on.

    Sacred hands every observer the id of the highest-priority one; a file folder numbered by an
    SQL id then collides with runs already in it. Runs are matched across observers by
    ``info.run_uuid`` instead (docs/ARCHITECTURE.md).
    """

    def started_event(self, *args: Any, **kwargs: Any) -> Any:
        """Start the run under a new id of this observer's own numbering."""
        kwargs["_id"] = None
        return super().started_event(*args, **kwargs)

    def queued_event(self, *args: Any, **kwargs: Any) -> Any:
        """Queue the run under a new id of this observer's own numbering."""
        kwargs["_id"] = None
        return super().queued_event(*args, **kwargs)


class OwnIdFileStorageObserver(_OwnIds, FileStorageObserver):
    """``FileStorageObserver`` that always allocates its own run folder number (Sacred's
    mkdir-retry makes that race-free)."""

    def check_reachable(self) -> None:
        """Raise ``OSError`` unless the base folder exists (or can be created) and is writable."""
        import os
        import tempfile

        os.makedirs(self.basedir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.basedir, prefix=".probe-"):
            pass

    def __repr__(self) -> str:
        return f"FileStorageObserver({self.basedir!r})"


class OwnIdMongoObserver(_OwnIds, MongoObserver):
    """``MongoObserver`` that always allocates its own ``_id`` (Sacred retries on duplicates).

    ``display_url`` is the URL with its password masked, used in every message about it.
    """

    display_url = "mongodb"

    def check_reachable(self) -> None:
        """Ping the server (bounded by the client's server-selection timeout)."""
        self.runs.database.client.admin.command("ping")

    def close(self) -> None:
        """Close the client (pymongo warns when a client is garbage-collected open)."""
        self.runs.database.client.close()

    def __repr__(self) -> str:
        return f"MongoObserver({self.display_url!r})"
