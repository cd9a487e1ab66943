"""Run statuses and their rules: what a store records, what a reader shows, how each maps to an
exit code.

Stored by the observers (Sacred's vocabulary): :data:`RUNNING` while the run lives, then one of
:data:`COMPLETED`, :data:`FAILED` (``fail_trace``), :data:`INTERRUPTED` (SIGINT/SIGTERM or a
search's pruner; ``info.stopped_reason``), or Sacred's :data:`TIMEOUT`.

Shown by readers, never stored: :data:`DIED` for a RUNNING record whose last sign of life (its
heartbeat, else its start) is more than :data:`STALE_BEATS` beat intervals old (the interval is
``info.beat_every_s``, Sacred's :data:`SACRED_BEAT_S` when absent; writer and reader clocks must
agree within that margin), and :data:`PRUNED` for an INTERRUPTED run whose ``stopped_reason`` is
:data:`PRUNED_REASON` (any stopped reason is shown in capitals).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from capreolus_opt.records import exit_codes

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
INTERRUPTED = "INTERRUPTED"
TIMEOUT = "TIMEOUT"
DIED = "DIED"
PRUNED = "PRUNED"
#: ``info.stopped_reason`` of a run a search's pruner stopped (shown as :data:`PRUNED`).
PRUNED_REASON = "pruned"

#: Statuses a store holds once the run has ended.
TERMINAL = (COMPLETED, FAILED, INTERRUPTED, TIMEOUT)
#: A RUNNING run whose heartbeat is older than this many beat intervals is shown as DIED.
STALE_BEATS = 10
#: Beat interval assumed for runs that do not record ``info.beat_every_s`` (Sacred's default).
SACRED_BEAT_S = 10.0


def live_status(
    status: str,
    heartbeat: dt.datetime | None,
    start_time: dt.datetime | None,
    beat_every_s: Any,
    now: dt.datetime | None = None,
) -> str:
    """``status``, or :data:`DIED` for a RUNNING run whose last sign of life is stale (see the
    module docstring); times are naive UTC."""
    last = heartbeat or start_time
    if status != RUNNING or last is None:
        return status
    beat = float(beat_every_s) if isinstance(beat_every_s, int | float) else SACRED_BEAT_S
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if (now - last).total_seconds() > STALE_BEATS * max(beat, 0.1):
        return DIED
    return status


def shown_status(status: str, stopped_reason: str | None) -> str:
    """The status a table shows: the stopped reason in capitals (:data:`PRUNED`) for an
    INTERRUPTED run that has one, else ``status``."""
    if status == INTERRUPTED and stopped_reason:
        return stopped_reason.upper()
    return status


def status_for_exit(code: int) -> str:
    """The status of the run behind a ``train`` exit code (a launcher that only has the code)."""
    if code in (exit_codes.OK, exit_codes.STORE_INCOMPLETE):
        return COMPLETED
    if code == exit_codes.INTERRUPTED:
        return INTERRUPTED
    return FAILED
