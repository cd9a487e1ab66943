"""A training ``MetricsSink`` that records into a Sacred run without losing a point.

How Sacred delivers metrics: ``run.log_scalar`` only queues a point; a heartbeat thread wakes
every ``beat_interval`` seconds (10 by default), drains the queue and calls every observer's
``log_metrics`` and ``heartbeat_event``. Points logged after the last beat reach observers only
through the final beat when the run stops, which Sacred waits for at most 2 s; with
``beat_interval=0`` no point is ever written. A heartbeat on the thread could also run at the
same time as one we force from the training thread, and FileStorage's ``log_metrics`` is a
read-modify-write of ``metrics.json``: two at once lose points.

So :class:`SacredMetricsSink` takes the heartbeat over. On creation it stops Sacred's periodic
thread (one beat, at once) and leaves in its place a thread that beats only once, when Sacred
stops the run (it then finds the queue already drained by our final flush). Every
``flush_every_s`` seconds of logging, and on :meth:`flush` (which the training loop calls at the
end, on failure and on interrupt), the sink beats on the training thread itself, so delivery is
sequential and the queue is empty when the run's final status is written.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any


def _take_over_heartbeat(run: Any) -> None:
    """Replace Sacred's periodic heartbeat thread by one that beats only when the run stops."""
    run._stop_heartbeat()  # final beat of Sacred's thread (writes info/output once)
    stop = threading.Event()

    def beat_at_stop() -> None:
        stop.wait()
        run._emit_heartbeat()

    thread = threading.Thread(target=beat_at_stop, name="sacred-final-heartbeat", daemon=True)
    # Sacred's Run._stop_heartbeat() sets this event and joins this thread.
    run._stop_heartbeat_event, run._heartbeat = stop, thread
    thread.start()


class SacredMetricsSink:
    """``MetricsSink`` (training protocol) backed by a running Sacred ``Run``.

    Args:
        run: the current Sacred run (``_run`` inside a main function).
        flush_every_s: deliver queued points to the observers at most this often while logging
            (Sacred's default beat interval). Each FileStorage delivery rewrites the whole
            ``metrics.json``, so flushing every step would cost O(steps²).
        clock: monotonic clock in seconds (injectable for tests).

    Attributes:
        points_logged: number of points logged per metric name, for checks and reports.
    """

    def __init__(
        self,
        run: Any,
        *,
        flush_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (flush_every_s >= 0 and math.isfinite(flush_every_s)):
            raise ValueError(
                f"flush_every_s must be a finite number >= 0, received {flush_every_s!r}."
            )
        self._run = run
        self._flush_every_s = flush_every_s
        self._clock = clock
        self.points_logged: Counter[str] = Counter()
        _take_over_heartbeat(run)
        self._last_flush = clock()

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Queue one point per metric at ``step``; deliver if ``flush_every_s`` has passed."""
        step = int(step)
        for name, value in metrics.items():
            self._run.log_scalar(name, float(value), step)
            self.points_logged[name] += 1
        if self._clock() - self._last_flush >= self._flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Deliver every queued point, the run info and captured output to all observers now.

        An observer that raises is reported by Sacred (a warning naming it) and skipped from
        then on; the others keep receiving everything.
        """
        self._run._emit_heartbeat()
        self._last_flush = self._clock()
