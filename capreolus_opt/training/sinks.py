"""Where training metrics go: the ``MetricsSink`` protocol, simple sinks, and console progress.

The loop calls sinks outside the traced step, on the chief worker only, with plain floats.
Metric names (:class:`capreolus_opt.records.schema.MetricName`): ``train/loss``,
``group/<group>/lr|grad_norm|update_norm|param_norm``, ``eval/<metric>``. The Sacred sink
(``tracking/``) implements the same protocol.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TextIO, runtime_checkable


@runtime_checkable
class MetricsSink(Protocol):
    """Receives every metric with its step."""

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def flush(self) -> None: ...


class ListSink:
    """Keeps every ``(step, name, value)`` in memory (tests, notebooks)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, str, float]] = []
        self.flush_count = 0

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self.records.extend((int(step), name, float(v)) for name, v in metrics.items())

    def flush(self) -> None:
        self.flush_count += 1

    def series(self, name: str) -> list[tuple[int, float]]:
        """``[(step, value), ...]`` of one metric, in logging order."""
        return [(s, v) for s, n, v in self.records if n == name]

    def names(self) -> set[str]:
        return {n for _, n, _ in self.records}


class ConsoleSink:
    """Writes one line per ``log_metrics`` call: ``step 100  train/loss=0.6931  ...``."""

    def __init__(self, stream: TextIO | None = None, precision: int = 4) -> None:
        self._stream = stream
        self._precision = precision

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        stream = self._stream or sys.stdout
        body = "  ".join(f"{k}={v:.{self._precision}g}" for k, v in sorted(metrics.items()))
        stream.write(f"step {step}  {body}\n")

    def flush(self) -> None:
        (self._stream or sys.stdout).flush()


class MultiSink:
    """Forwards every call to each of ``sinks`` in order."""

    def __init__(self, sinks: Sequence[MetricsSink]) -> None:
        self.sinks = list(sinks)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for sink in self.sinks:
            sink.log_metrics(step, metrics)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()


PROGRESS_MODES = ("auto", "bar", "lines", "off")


#: The run-time estimate above which the reporter warns once (``ProgressReporter``).
LONG_RUN_S = 2 * 3600.0
#: Step calls timed before that estimate is made (the first call, which traces, is not timed).
_CALLS_BEFORE_ESTIMATE = 3


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``?`` for an unknown or infinite duration)."""
    if not seconds >= 0 or seconds == float("inf"):
        return "?"
    total = int(round(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


class ProgressReporter:
    """Steps, loss, examples/s and the time left on the console; evaluation progress.

    ``mode``: ``"bar"`` redraws one line in place (``\\r``), ``"lines"`` prints a plain line every
    ``every`` steps (logs, CI), ``"off"`` prints nothing, ``"auto"`` picks ``"bar"`` when ``stream``
    is a terminal and ``"lines"`` otherwise. Rates leave out the time spent evaluating and the
    first step call (tracing). Once a few step calls are timed, a run whose remaining steps
    would take longer than ``long_run_s`` gets one warning line with the estimate (unless off).
    Evaluations redraw a batch counter with its own ETA in ``"bar"`` mode only.
    """

    def __init__(
        self,
        total_steps: int,
        global_batch_size: int,
        *,
        mode: str | bool = "auto",
        every: int = 100,
        stream: TextIO | None = None,
        start_step: int = 0,
        long_run_s: float = LONG_RUN_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if mode is True:
            mode = "auto"
        elif mode is False:
            mode = "off"
        if mode not in PROGRESS_MODES:
            raise ValueError(
                f"progress must be one of {list(PROGRESS_MODES)} or a bool. Received: {mode!r}"
            )
        self._stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self._stream, "isatty", lambda: False)() else "lines"
        self.mode = mode
        self._total = total_steps
        self._batch = global_batch_size
        self._every = max(1, every)
        self._clock = clock
        self._long_run_s = long_run_s
        self._calls = 0
        self._timed_from: tuple[int, float] | None = None  # (step, time) after the first call
        self._last_step = start_step
        self._last_time = clock()
        self._paused = 0.0  # seconds of evaluation since the last update
        self._rate = 0.0  # examples/s over the last interval
        self._warned = False
        self._midline = False  # the bar has drawn on the current line
        self._eval: dict | None = None

    def _steps_per_second(self, step: int, now: float) -> float:
        if self._timed_from is None or step <= self._timed_from[0]:
            return 0.0
        start, then = self._timed_from
        return (step - start) / max(now - then, 1e-9)

    def eta_seconds(self, step: int) -> float:
        """Estimated seconds for the remaining steps (inf while unknown)."""
        rate = self._steps_per_second(step, self._clock())
        return (self._total - step) / rate if rate > 0 else float("inf")

    def update(self, step: int, loss: float) -> None:
        if self.mode == "off":
            return
        now = self._clock()
        self._calls += 1
        if self._timed_from is not None:
            # Evaluations are not training time: shift the timing origin past them.
            self._timed_from = (self._timed_from[0], self._timed_from[1] + self._paused)
        if step > self._last_step and now - self._paused > self._last_time:
            elapsed = now - self._paused - self._last_time
            self._rate = (step - self._last_step) * self._batch / elapsed
        self._last_step, self._last_time, self._paused = step, now, 0.0
        if self._timed_from is None:
            self._timed_from = (step, now)
        eta = self.eta_seconds(step)
        tail = f"  ETA {format_duration(eta)}" if eta != float("inf") else ""
        if self.mode == "bar":
            width = 30
            filled = int(width * step / max(1, self._total))
            bar = "#" * filled + "." * (width - filled)
            self._stream.write(
                f"\r[{bar}] {step}/{self._total}  loss {loss:.4f}  "
                f"{self._rate:,.1f} examples/s{tail}"
            )
            self._stream.flush()
            self._midline = True
        elif step % self._every == 0 or step == self._total:
            self._stream.write(
                f"step {step}/{self._total}  loss {loss:.4f}  {self._rate:,.1f} examples/s{tail}\n"
            )
        self._maybe_warn_long_run(step, eta)

    def _maybe_warn_long_run(self, step: int, eta: float) -> None:
        if self._warned or self._calls <= _CALLS_BEFORE_ESTIMATE or eta == float("inf"):
            return
        self._warned = True
        if eta <= self._long_run_s:
            return
        rate = self._steps_per_second(step, self._clock()) * self._batch
        self._line(
            f"warning: at {rate:,.1f} examples/s the remaining {self._total - step:,} steps "
            f"take about {format_duration(eta)} (more than {format_duration(self._long_run_s)}):"
            " fewer steps, shorter sequences, a smaller model or an accelerator would help"
        )

    def _line(self, text: str) -> None:
        prefix = "\n" if self._midline else ""
        self._stream.write(f"{prefix}{text}\n")
        self._stream.flush()
        self._midline = False

    def eval_started(self, what: str, batches: int | None) -> Callable[[], None]:
        """Starts an evaluation of ``batches`` batches (None: unknown); returns the function to
        call after each batch."""
        self._eval = {"what": what, "total": batches, "done": 0, "start": self._clock()}
        return self._eval_batch

    def _eval_batch(self) -> None:
        ev = self._eval
        if ev is None:
            return
        ev["done"] += 1
        if self.mode != "bar":
            return
        done, total = ev["done"], ev["total"]
        elapsed = self._clock() - ev["start"]
        eta = elapsed / done * (total - done) if total else float("inf")
        count = f"{done}/{total}" if total else str(done)
        self._stream.write(f"\r{ev['what']}: batch {count}  ETA {format_duration(eta)}\x1b[K")
        self._stream.flush()
        self._midline = True

    def eval_done(self) -> None:
        """Ends the evaluation that ``eval_started`` began (its time is not training time)."""
        if self._eval is not None:
            self._paused += self._clock() - self._eval["start"]
            self._eval = None

    def evaluated(self, step: int, metrics: dict[str, float]) -> None:
        """One line with the evaluation metrics at ``step`` (so users see them move)."""
        if self.mode == "off":
            return
        values = "  ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items()))
        self._line(f"eval at step {step}/{self._total}  {values}")

    def close(self) -> None:
        if self._midline:
            self._midline = False
            self._stream.write("\n")
            self._stream.flush()


class CountProgress:
    """A one-line ``\\r`` counter for a known amount of work (``rerank``'s pairs): done/total,
    items/s and the ETA, on ``stream`` (stderr) when it is a terminal, or always with
    ``mode="bar"``; nothing with ``mode="off"``. Call it with the count done so far."""

    def __init__(
        self,
        total: int,
        *,
        what: str = "scored",
        unit: str = "pairs",
        mode: str = "auto",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if mode not in ("auto", "bar", "off"):
            raise ValueError(f"progress must be 'auto', 'bar' or 'off'. Received: {mode!r}")
        self._stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self._stream, "isatty", lambda: False)() else "off"
        self.mode = mode
        self._total, self._what, self._unit, self._clock = total, what, unit, clock
        self._start = clock()
        self._drawn = False

    def __call__(self, done: int) -> None:
        if self.mode == "off":
            return
        elapsed = self._clock() - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self._total - done) / rate if rate > 0 else float("inf")
        self._stream.write(
            f"\r{self._what} {done:,}/{self._total:,} {self._unit}  {rate:,.1f} {self._unit}/s"
            f"  ETA {format_duration(eta)}\x1b[K"
        )
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Ends the line (when anything was drawn)."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
