"""Sacred's FileStorage and Mongo observers, each numbering its own runs.

Sacred gives every observer the id that the highest-priority observer chose (SQL numbers from 0,
file and Mongo from 1, docs/STACK_FACTS.md §5). With a FileStorage folder and an SQL database
together, the
folder is then asked to create ``runs/<sql id>``, which fails as soon as that number already
exists there (and Mongo refuses a duplicate ``_id`` the same way). Runs are identified across
observers by our own ``info.run_uuid``, so each observer here ignores the id it is handed and
allocates the next free one in its own store, race-free (mkdir / unique index retries).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sacred.dependencies import get_digest
from sacred.observers import FileStorageObserver, MongoObserver
from sacred.serializer import flatten

from capreolus_opt.records import status as run_status
from capreolus_opt.records.schema import (
    CONFIG_FILE,
    INFO_FILE,
    METRICS_FILE,
    OUTPUT_FILE,
    RUN_FILE,
    Entry,
)
from capreolus_opt.tracking import sacred_private


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
    """``FileStorageObserver`` that allocates its own run folder number (Sacred's mkdir-retry
    makes that race-free), writes every file atomically, and survives a full disk.

    Sacred 0.8.7 writes ``run.json``/``config.json``/``info.json``/``metrics.json`` with a plain
    ``open(..., "w")`` (a full disk or a kill leaves a truncated or empty JSON), appends
    ``cout.txt``, copies artifacts and ``_sources``/``_resources`` files with ``copyfile`` (a
    0-byte source file stays and is trusted by every later run with the same digest), and re-reads
    ``metrics.json`` at every delivery. Here every file is written to a temporary name, synced,
    and renamed over the old one, so a reader sees the previous or the new version, never a
    partial one; a stored source/resource file is reused only if its digest still matches; the
    metrics are kept in memory (the file is rewritten, never re-read).

    After the run has started, no event raises into Sacred (which would drop the observer for the
    rest of the run): a write that fails (``OSError``: disk full, quota, I/O error) leaves the
    file marked unwritten, with everything it should hold kept in memory, and every later event
    tries again. ``run.json`` is written last, so it never says COMPLETED before everything else
    is on disk. A final event retries for up to :attr:`final_wait_s` seconds;
    :meth:`missing` then says what could not be written (the ``train`` command exits 3).
    """

    final_wait_s = 30.0

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        """Sacred's state, plus the in-memory copy of what is not yet written."""
        super().initialize(*args, **kwargs)
        self._lock = threading.RLock()
        self._metrics: dict[str, dict[str, list]] = {}
        self._unwritten: dict[str, Callable[[], None]] = {}
        self._unwritten_points = 0
        self._error: str | None = None
        self._metrics_write_s = 0.0
        self._metrics_written_at = 0.0
        self._written: dict[str, bytes] = {}  # what each file holds now, by path

    #: Bytes written (and synced) by :meth:`check_reachable`: about what a run's start writes
    #: (run.json, config.json, its gin sources), so a disk already full is found before the run.
    probe_bytes = 64 * 1024

    def check_reachable(self) -> None:
        """Raise ``OSError`` unless the base folder exists (or can be created) and takes
        :attr:`probe_bytes` of data (an empty file can still be created on a full disk)."""
        os.makedirs(self.basedir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.basedir, prefix=".probe-") as probe:
            try:
                probe.write(b"\0" * self.probe_bytes)
                probe.flush()
                os.fsync(probe.fileno())
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot write {self.probe_bytes // 1024} KiB into "
                    f"{self.basedir} ({exc.strerror})"
                ) from None  # fmt: skip

    def started_event(self, *args: Any, **kwargs: Any) -> Any:
        """Sacred's start; a start the disk cannot hold leaves no run folder behind, and no
        run to finish there (the error, naming the folder, ends the run)."""
        try:
            return super().started_event(*args, **kwargs)
        except OSError as exc:
            folder = getattr(self, "dir", None)
            if folder and os.path.isdir(folder):
                shutil.rmtree(folder, ignore_errors=True)
            self.run_entry = None  # nothing to finish: no retries into a folder that is gone
            self._unwritten.clear()
            raise OSError(
                exc.errno, f"cannot record the run's start in {self.basedir} ({exc.strerror})"
            ) from None

    # --- atomic writes (used by Sacred's own event code too) -----------------------------------

    def save_json(self, obj: Any, filename: str) -> None:
        """Write ``obj`` as ``filename`` in the run folder, atomically."""
        text = json.dumps(flatten(obj), sort_keys=True, indent=2)
        # A heartbeat's run.json need not reach the disk platter: rename keeps it whole, and the
        # next beat rewrites it (an fsync per beat cost ~80 ms on a busy shared disk).
        beat_only = filename == RUN_FILE and obj.get(Entry.STATUS) == run_status.RUNNING
        self._write_if_changed(filename, text.encode("utf-8"), sync=not beat_only)

    def save_cout(self) -> None:
        """Rewrite ``cout.txt`` whole (an append cut short would repeat text on the retry)."""
        self._write_if_changed(OUTPUT_FILE, self.cout.encode("utf-8"), sync=False)
        self.cout_write_cursor = len(self.cout)

    def _write_if_changed(self, filename: str, data: bytes, sync: bool = True) -> None:
        # info.json and cout.txt rarely change between beats; each write costs an fsync
        # (~20-50 ms on a busy disk), so an unchanged file is not written again.
        path = os.path.join(self.dir, filename)
        if self._written.get(path) == data:
            return
        atomic_write(path, data, sync=sync)
        self._written[path] = data

    def save_file(self, filename: str, target_name: str | None = None) -> None:
        """Copy ``filename`` into the run folder atomically (Sacred refuses its own files)."""
        target = os.path.join(self.dir, target_name or os.path.basename(filename))
        if os.path.basename(target) in _SACRED_FILES and os.path.dirname(target) == self.dir:
            raise FileExistsError(f"refusing to overwrite {target}: the observer writes it")
        with open(filename, "rb") as source:
            atomic_write(target, source.read())

    def find_or_save(self, filename: Any, store_dir: Path) -> Any:
        """Sacred's shared ``_sources``/``_resources`` store, reusing a file only if intact."""
        try:
            Path(filename).resolve().relative_to(Path(self.basedir).resolve())
            if not self.copy_artifacts:
                return filename
        except ValueError:
            pass
        store_dir.mkdir(parents=True, exist_ok=True)
        name, ext = os.path.splitext(os.path.basename(filename))
        digest = get_digest(filename)
        store_path = store_dir / f"{name}_{digest}{ext}"
        # A file left truncated (e.g. by an older version on a full disk) is replaced.
        if not store_path.exists() or get_digest(store_path) != digest:
            with open(filename, "rb") as source:
                atomic_write(str(store_path), source.read())
        return store_path

    # --- events after the start: never raise, keep what could not be written -------------------

    def heartbeat_event(self, info: Any, captured_out: str, beat_time: Any, result: Any) -> None:
        """Record info, output, heartbeat time and result (retrying unwritten files)."""
        with self._lock:
            # A copy (atomic under the GIL): the training thread may add keys while this beat,
            # on the sink's thread, serialises them.
            self.info, self.cout = dict(info), captured_out
            self.run_entry[Entry.HEARTBEAT] = beat_time.isoformat()
            self.run_entry[Entry.RESULT] = result
            self._mark(OUTPUT_FILE, self.save_cout)
            if self.info:
                self._mark(INFO_FILE, lambda: self.save_json(self.info, INFO_FILE))
            self._mark_run_entry()
            self._sync()

    def log_metrics(self, metrics_by_name: dict, info: Any) -> None:
        """Append the points to the in-memory series; rewrite ``metrics.json`` when due."""
        with self._lock:
            for name, series in metrics_by_name.items():
                empty: dict[str, list] = {"values": [], "steps": [], "timestamps": []}
                saved = self._metrics.setdefault(name, empty)
                saved["values"] += series["values"]
                saved["steps"] += series["steps"]
                saved["timestamps"] += [t.isoformat() for t in series["timestamps"]]
                self._unwritten_points += len(series["values"])
            if metrics_by_name:
                self._mark(METRICS_FILE, self._write_metrics)
            self._sync()

    def artifact_event(self, name: str, filename: str, metadata: Any = None, content_type=None):
        """Keep the artifact's bytes (the file may be temporary) and write them to the folder."""
        with self._lock:
            with open(filename, "rb") as f:
                data = f.read()
            self._mark(f"artifact {name}", lambda: atomic_write(os.path.join(self.dir, name), data))
            if name not in self.run_entry[Entry.ARTIFACTS]:
                self.run_entry[Entry.ARTIFACTS].append(name)
            self._mark_run_entry()
            self._sync()

    def resource_event(self, filename: str) -> None:
        """Store the resource in ``_resources`` and list it in ``run.json`` (retried on failure)."""
        with self._lock:

            def store() -> None:
                path = self.find_or_save(filename, self.resource_dir)
                self.run_entry["resources"].append([filename, str(path)])

            self._mark(f"resource {filename}", store)
            self._mark_run_entry()
            self._sync()

    def completed_event(self, stop_time: Any, result: Any) -> None:
        """Mark COMPLETED once everything else is on disk."""
        self._final(stop_time=stop_time.isoformat(), result=result, status=run_status.COMPLETED)

    def interrupted_event(self, interrupt_time: Any, status: str) -> None:
        """Mark INTERRUPTED (or Sacred's status) once everything else is on disk."""
        self._final(stop_time=interrupt_time.isoformat(), status=status)

    def failed_event(self, fail_time: Any, fail_trace: Any) -> None:
        """Mark FAILED, with the trace, once everything else is on disk."""
        self._final(
            stop_time=fail_time.isoformat(), status=run_status.FAILED, fail_trace=fail_trace
        )

    def missing(self) -> str | None:
        """What this run's folder still lacks (None when complete)."""
        with self._lock:
            if not self._unwritten:
                return None
            names = ", ".join(self._unwritten)
            return (
                f"{self!r} could not write {names} of run folder {self.dir} "
                f"({self._unwritten_points} metric points kept only in memory, now lost; "
                f"status there: {self._status_on_disk()}); last error: {self._error}"
            )

    # --- internals -------------------------------------------------------------------------------

    def _final(self, **entry: Any) -> None:
        if self.run_entry is None:  # started_event failed (e.g. disk full): nothing to finish
            return
        with self._lock:
            self.run_entry.update(entry)
            self._mark_run_entry()
            deadline = time.monotonic() + self.final_wait_s
            while not self._sync(final=True) and time.monotonic() < deadline:
                time.sleep(0.5)

    def _mark(self, key: str, write: Callable[[], None]) -> None:
        self._unwritten.pop(key, None)
        self._unwritten[key] = write
        # run.json always goes last: it must not say more than the other files hold.
        if key != RUN_FILE and RUN_FILE in self._unwritten:
            self._unwritten[RUN_FILE] = self._unwritten.pop(RUN_FILE)

    def _mark_run_entry(self) -> None:
        self._mark(RUN_FILE, lambda: self.save_json(self.run_entry, RUN_FILE))

    def _write_metrics(self) -> None:
        start = time.monotonic()
        self.save_json(self._metrics, METRICS_FILE)
        self._unwritten_points = 0
        self._metrics_written_at = time.monotonic()
        self._metrics_write_s = self._metrics_written_at - start

    def _metrics_due(self) -> bool:
        # Rewriting a large metrics.json at every beat would cost O(points) each time: wait at
        # least 50x the last write's duration (<= 2% of wall time on writing it), but never
        # more than METRICS_MAX_LAG_S, which bounds what a kill can lose when writes are slow
        # (a loaded CI disk took ~0.7 s a write: 35 s of points were at stake).
        wait = min(50 * self._metrics_write_s, METRICS_MAX_LAG_S)
        return time.monotonic() - self._metrics_written_at >= wait

    def flush(self) -> None:
        """Write every point received so far now (the training loop asks before a checkpoint,
        so that a run resumed from that checkpoint finds no point missing before it)."""
        with self._lock:
            if METRICS_FILE in self._unwritten:
                try:
                    self._unwritten.pop(METRICS_FILE)()
                except OSError as exc:
                    self._unwritten[METRICS_FILE] = self._write_metrics
                    self._report(METRICS_FILE, exc)

    def _sync(self, final: bool = False) -> bool:
        """Write the unwritten files in order; stop at the first failure. True when all done."""
        for key, write in list(self._unwritten.items()):
            if key == METRICS_FILE and not final and not self._metrics_due():
                continue
            try:
                write()
            except OSError as exc:
                self._report(key, exc)
                return False
            self._unwritten.pop(key, None)
        if self._error is not None and not self._unwritten:
            _LOG.warning("observer %r caught up: every file is written again", self)
            self._error = None
        return not self._unwritten

    def _report(self, key: str, exc: OSError) -> None:
        first = self._error is None
        self._error = f"{type(exc).__name__}: {exc}"
        if first:
            _LOG.warning(
                "observer %r could not write %s (%s); keeping it in memory and retrying at every "
                "beat", self, key, self._error,
            )  # fmt: skip

    def _status_on_disk(self) -> str:
        try:
            with open(os.path.join(self.dir, RUN_FILE), encoding="utf-8") as f:
                return str(json.load(f).get(Entry.STATUS))
        except (OSError, ValueError, AttributeError):
            return "unreadable"

    def __repr__(self) -> str:
        return f"FileStorageObserver({self.basedir!r})"


#: The longest metrics.json may trail the points it received (see ``_metrics_due``).
METRICS_MAX_LAG_S = 5.0

_SACRED_FILES = (RUN_FILE, CONFIG_FILE, OUTPUT_FILE, METRICS_FILE, INFO_FILE)
_LOG = logging.getLogger("capreolus_opt.run")


def atomic_write(path: str, data: bytes, sync: bool = True) -> None:
    """Replace ``path`` by ``data``: temporary file, fsync (``sync``), rename (never a partial
    file)."""
    tmp = f"{os.path.dirname(path) or '.'}/.{os.path.basename(path)}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def incomplete_observers(run: Any) -> list[str]:
    """One message per observer of ``run`` whose record is incomplete (empty when all are).

    An observer that raised was dropped by Sacred for the rest of the run
    (:func:`~capreolus_opt.tracking.sacred_private.failed_observers`); ours never raise after the
    start and answer :meth:`missing`.
    """
    messages = []
    dropped = sacred_private.failed_observers(run)
    for observer in run.observers:
        if observer in dropped:
            messages.append(
                f"observer {observer!r} failed during the run and was dropped by Sacred: its "
                "record misses every event after the failure (see the warning above)"
            )
            continue
        missing = getattr(observer, "missing", None)
        text = missing() if missing is not None else None
        if text:
            messages.append(f"observer {text}")
    return messages


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
