"""Where training metrics go: the ``MetricsSink`` protocol, simple sinks, and console progress.

The loop calls sinks outside the traced step, on the chief worker only, with plain floats.
Metric names: ``train/loss``, ``group/<group>/lr|grad_norm|update_norm|param_norm``,
``eval/<metric>``. The Sacred sink (``tracking/``) implements the same protocol.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
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


class ProgressReporter:
    """Steps, loss and examples/s on the console.

    ``mode``: ``"bar"`` redraws one line in place (``\\r``), ``"lines"`` prints a plain line every
    ``every`` steps (logs, CI), ``"off"`` prints nothing, ``"auto"`` picks ``"bar"`` when ``stream``
    is a terminal and ``"lines"`` otherwise.
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
        self._last_step = start_step
        self._last_time = time.perf_counter()
        self._rate = 0.0
        self._midline = False  # the bar has drawn on the current line

    def update(self, step: int, loss: float) -> None:
        if self.mode == "off":
            return
        now = time.perf_counter()
        if step > self._last_step and now > self._last_time:
            self._rate = (step - self._last_step) * self._batch / (now - self._last_time)
            self._last_step, self._last_time = step, now
        if self.mode == "bar":
            width = 30
            filled = int(width * step / max(1, self._total))
            bar = "#" * filled + "." * (width - filled)
            self._stream.write(
                f"\r[{bar}] {step}/{self._total}  loss {loss:.4f}  {self._rate:,.0f} examples/s"
            )
            self._stream.flush()
            self._midline = True
        elif step % self._every == 0 or step == self._total:
            self._stream.write(
                f"step {step}/{self._total}  loss {loss:.4f}  {self._rate:,.0f} examples/s\n"
            )

    def evaluated(self, step: int, metrics: dict[str, float]) -> None:
        """One line with the evaluation metrics at ``step`` (so users see them move)."""
        if self.mode == "off":
            return
        values = "  ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items()))
        prefix = "\n" if self._midline else ""
        self._stream.write(f"{prefix}eval at step {step}/{self._total}  {values}\n")
        self._stream.flush()
        self._midline = False

    def close(self) -> None:
        if self._midline:
            self._midline = False
            self._stream.write("\n")
            self._stream.flush()
