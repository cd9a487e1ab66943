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


class OwnIdFileStorageObserver(FileStorageObserver):
    """``FileStorageObserver`` that always allocates its own run folder number."""

    def started_event(self, *args: Any, **kwargs: Any) -> Any:
        """Start a run in a new numbered folder (Sacred's mkdir-retry makes this race-free)."""
        kwargs["_id"] = None
        return super().started_event(*args, **kwargs)

    def queued_event(self, *args: Any, **kwargs: Any) -> Any:
        """Queue a run in a new numbered folder."""
        kwargs["_id"] = None
        return super().queued_event(*args, **kwargs)

    def check_reachable(self) -> None:
        """Raise ``OSError`` unless the base folder exists (or can be created) and is writable."""
        import os
        import tempfile

        os.makedirs(self.basedir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.basedir, prefix=".probe-"):
            pass

    def __repr__(self) -> str:
        return f"FileStorageObserver({self.basedir!r})"


class OwnIdMongoObserver(MongoObserver):
    """``MongoObserver`` that always allocates its own ``_id`` (Sacred retries on duplicates).

    ``display_url`` is the URL with its password masked, used in every message about it.
    """

    display_url = "mongodb"

    def started_event(self, *args: Any, **kwargs: Any) -> Any:
        """Insert the run document with the next free integer ``_id``."""
        kwargs["_id"] = None
        return super().started_event(*args, **kwargs)

    def queued_event(self, *args: Any, **kwargs: Any) -> Any:
        """Insert a queued run document with the next free integer ``_id``."""
        kwargs["_id"] = None
        return super().queued_event(*args, **kwargs)

    def check_reachable(self) -> None:
        """Ping the server (bounded by the client's server-selection timeout)."""
        self.runs.database.client.admin.command("ping")

    def close(self) -> None:
        """Close the client (pymongo warns when a client is garbage-collected open)."""
        self.runs.database.client.close()

    def __repr__(self) -> str:
        return f"MongoObserver({self.display_url!r})"
