"""A training ``MetricsSink`` that records into a Sacred run without losing a point.

How Sacred delivers metrics: ``run.log_scalar`` only queues a point; a heartbeat thread wakes
every ``beat_interval`` seconds (10 by default), drains the queue and calls every observer's
``log_metrics`` and ``heartbeat_event``. Points logged after the last beat reach observers only
through the final beat when the run stops, which Sacred waits for at most 2 s; with
``beat_interval=0`` no point is ever written. A heartbeat on the thread could also run at the
same time as one we force from the training thread, and FileStorage's ``log_metrics`` is a
read-modify-write of ``metrics.json``: two at once lose points.

So :class:`SacredMetricsSink` takes the heartbeat over. On creation it silences Sacred's
periodic thread (stopped without its parting beat: the ``on_start`` beat writes the same) and
leaves in its place a thread that beats only once, when Sacred stops the run -- on completion,
failure and interrupt alike -- and so writes the final info and captured output. While logging,
every ``flush_every_s`` seconds the sink beats on the training thread itself (metrics, info,
output, as Sacred's thread would). :meth:`flush` (which the training loop calls at the end, on
failure and on interrupt) delivers the queued points on the training thread; with nothing queued
it writes nothing, so the loop's and the experiment's back-to-back flushes cost one delivery.
Delivery is thus sequential and the queue is empty before Sacred's final beat, which Sacred waits
for at most 2 s.

Cost (measured, benchmarks/tracking_overhead.py): a delivery is one read-modify-write of
FileStorage's ``metrics.json`` and one SQL commit; a full beat adds ``run.json``/``info.json``/
``cout.txt`` and one more commit.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from sacred.metrics_logger import linearize_metrics


def _take_over_heartbeat(run: Any) -> None:
    """Replace Sacred's periodic heartbeat thread by one that beats only when the run stops."""
    timer = run._heartbeat
    if timer is not None:
        # Stop Sacred's IntervalTimer without the beat it makes on stopping (it would write the
        # info and output that the on_start beat writes a moment later anyway).
        timer.func = _no_beat
        run._stop_heartbeat()
    stop = threading.Event()

    def beat_at_stop() -> None:
        stop.wait()
        run._emit_heartbeat()

    thread = threading.Thread(target=beat_at_stop, name="sacred-final-heartbeat", daemon=True)
    # Sacred's Run._stop_heartbeat() sets this event and joins this thread.
    run._stop_heartbeat_event, run._heartbeat = stop, thread
    thread.start()


def _no_beat() -> None:
    return None


class SacredMetricsSink:
    """``MetricsSink`` (training protocol) backed by a running Sacred ``Run``.

    Args:
        run: the current Sacred run (``_run`` inside a main function).
        flush_every_s: beat (deliver the queued points, the info and the captured output) at
            most this often while logging (Sacred's default beat interval). Each FileStorage
            delivery rewrites the whole ``metrics.json``, so beating every step would cost
            O(steps²).
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
        self._last_beat = clock()

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Queue one point per metric at ``step``; deliver if ``flush_every_s`` has passed."""
        step = int(step)
        for name, value in metrics.items():
            self._run.log_scalar(name, float(value), step)
            self.points_logged[name] += 1
        if self._clock() - self._last_beat >= self._flush_every_s:
            self.beat()

    def beat(self) -> None:
        """Deliver the queued points, the run info and the captured output to all observers now.

        An observer that raises is reported by Sacred (a warning naming it) and skipped from
        then on; the others keep receiving everything.
        """
        self._run._emit_heartbeat()
        self._last_beat = self._clock()

    def flush(self) -> None:
        """Deliver every queued point to all observers now (nothing is written if none is queued).

        The run info and captured output follow at the next beat; the last one is Sacred's, when
        the run stops. Observer failures are handled as in :meth:`beat`.
        """
        run = self._run
        points = run._metrics.get_last_metrics()
        if points:
            metrics_by_name = linearize_metrics(points)
            for observer in run.observers:
                run._safe_call(
                    observer, "log_metrics", metrics_by_name=metrics_by_name, info=run.info
                )
        # The beat clock is not reset: info, output and heartbeat time keep their cadence.
