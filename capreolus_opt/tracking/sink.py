"""A training ``MetricsSink`` that records into a Sacred run without losing a point.

How Sacred delivers metrics: ``run.log_scalar`` only queues a point; a heartbeat thread wakes
every ``beat_interval`` seconds (10 by default), drains the queue and calls every observer's
``log_metrics`` and ``heartbeat_event``. Points logged after the last beat reach observers only
through the final beat when the run stops, which Sacred waits for at most 2 s; with
``beat_interval=0`` no point is ever written. A heartbeat on the thread could also run at the
same time as one we force from the training thread, and FileStorage's ``log_metrics`` is a
read-modify-write of ``metrics.json``: two at once lose points.

So :class:`SacredMetricsSink` takes the heartbeat over, and serialises every delivery with one
lock. It replaces Sacred's periodic thread (stopped without its parting beat: the ``on_start``
beat writes the same) by its own, which every ``flush_every_s`` seconds (default
:data:`DEFAULT_BEAT_S`) delivers the queued points and beats (info, output, heartbeat time) --
also while the training thread is busy in a long step or evaluation, so that a live run always
has a fresh heartbeat -- and beats once more when Sacred stops the run (completion, failure and
interrupt alike), which writes the final info and captured output. ``log_metrics`` only
queues (the training thread does no observer I/O while training); :meth:`flush` (which the
training loop calls at the end, on failure and on interrupt) delivers the queued points; with
nothing queued it writes nothing. Under the lock deliveries never overlap, and the queue is
empty before Sacred's final beat.

Durability bound: a point is handed to the observers at most ``flush_every_s`` seconds after it
was logged (plus the time of one delivery); FileStorage then syncs it to disk (rewriting
``metrics.json`` is postponed while one rewrite took more than 1/50 of the time since the last
one, which bounds its cost for very long runs), SQL commits it. So SIGKILL or a power cut loses at
most the points of the last ``flush_every_s`` seconds (3 s by default). The run records
``info.beat_every_s``; readers show a RUNNING run whose heartbeat is more than
:data:`~capreolus_opt.records.status.STALE_BEATS` beats old as ``DIED``.

Cost: ``benchmarks/tracking_overhead.py`` prints the share of a run's wall time spent tracking
(FileStorage + SQLite, quickstart config). A delivery is one rewrite of
FileStorage's ``metrics.json`` and one SQL commit; a beat adds ``run.json`` (and
``info.json``/``cout.txt`` when they changed) and the row update in the same commit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from sacred.metrics_logger import linearize_metrics

from capreolus_opt.tracking import sacred_private

DEFAULT_BEAT_S = 3.0


class SacredMetricsSink:
    """``MetricsSink`` (training protocol) backed by a running Sacred ``Run``.

    Args:
        run: the current Sacred run (``_run`` inside a main function).
        flush_every_s: deliver the queued points and beat (info, output, heartbeat time) this
            often, from the sink's own thread (0: at every check of that thread, every
            ``DEFAULT_BEAT_S`` seconds). Each FileStorage delivery rewrites the whole
            ``metrics.json``.
        clock: monotonic clock in seconds (injectable for tests; the background thread waits
            in real time and beats when this clock says the interval has passed).

    Attributes:
        points_logged: number of points logged per metric name, for checks and reports.
    """

    def __init__(
        self,
        run: Any,
        *,
        flush_every_s: float = DEFAULT_BEAT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (flush_every_s >= 0 and math.isfinite(flush_every_s)):
            raise ValueError(
                f"flush_every_s must be a finite number >= 0, received {flush_every_s!r}."
            )
        self._run = run
        self._flush_every_s = flush_every_s
        self._clock = clock
        self._lock = threading.RLock()
        self.points_logged: Counter[str] = Counter()
        self._last_beat = clock()
        sacred_private.stop_sacred_heartbeat(run)
        # An observer Sacred dropped keeps its record RUNNING (shown as DIED once stale), and
        # `train` exits 3 naming it, instead of a COMPLETED record that lacks the rest.
        sacred_private.skip_completed_for_failed_observers(run)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._beat_until, args=(stop,), name="capreolus-heartbeat", daemon=True
        )
        sacred_private.use_heartbeat_thread(run, thread, stop)
        thread.start()

    def _beat_until(self, stop: threading.Event) -> None:
        wait = self._flush_every_s or DEFAULT_BEAT_S
        while not stop.wait(wait):
            self.beat_if_due()
        with self._lock:
            sacred_private.emit_heartbeat(self._run)  # Sacred's final beat: info and output

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Queue one point per metric at ``step`` (the beat thread delivers it)."""
        step = int(step)
        for name, value in metrics.items():
            self._run.log_scalar(name, float(value), step)
            self.points_logged[name] += 1

    def record_info(self, **values: Any) -> None:
        """Add ``values`` to the run's info (delivered with the next beat, or the final one)."""
        self._run.info.update(values)

    def beat_if_due(self) -> None:
        """Beat if ``flush_every_s`` has passed since the last beat (what the beat thread does
        every ``flush_every_s`` seconds; the training thread never waits on observer I/O)."""
        with self._lock:
            if self._clock() - self._last_beat >= self._flush_every_s:
                self.beat()

    def beat(self) -> None:
        """Deliver the queued points, the run info and the captured output to all observers now.

        Our observers never raise after the start (they buffer and retry); another observer that
        raises is reported by Sacred (a warning naming it) and skipped from then on.
        """
        with self._lock:
            sacred_private.emit_heartbeat(self._run)
            self._last_beat = self._clock()

    def flush(self) -> None:
        """Deliver every queued point to all observers now (nothing is written if none is queued).

        The run info and captured output follow at the next beat; the last one is Sacred's, when
        the run stops. Observer failures are handled as in :meth:`beat`.
        """
        with self._lock:
            run = self._run
            points = sacred_private.queued_metrics(run)
            if points:
                metrics_by_name = linearize_metrics(points)
                for observer in run.observers:
                    sacred_private.call_observer(
                        run, observer, "log_metrics", metrics_by_name=metrics_by_name, info=run.info
                    )
            dropped = sacred_private.failed_observers(run)
            for observer in run.observers:  # observers that batch their writes write them now
                if hasattr(observer, "flush") and observer not in dropped:
                    sacred_private.call_observer(run, observer, "flush")
        # The beat clock is not reset: info, output and heartbeat time keep their cadence.
