"""Every private name of Sacred 0.8.7 that capreolus_opt reads or replaces, behind functions.

Sacred has no public API to take over a run's heartbeat (the metrics sink beats on its own
thread, at its own interval), to deliver queued metrics between beats, to see which observers it
dropped after an error, or to read the id the highest-priority observer gave the run. The
functions here do it on ``sacred.run.Run``'s private attributes; the SQL observer
(``sql_observer.py``) overrides the private hook :data:`SQL_OBSERVER_HOOKS` names. When Sacred is
upgraded, this module and ``tests/tracking/test_sacred_private.py`` are where it breaks. (The
``pkg_resources`` stand-in Sacred imports is :mod:`capreolus_opt.tracking.sacred_compat`.)

Version policy, checked on import: a private method or hook missing raises ``ImportError``
naming it and the tested version; a different version with them present warns once
(``UntestedVersionWarning``, one line) and runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sacred.observers import SqlObserver
from sacred.run import Run

from capreolus_opt.framework_versions import check_pinned, warn_untested

#: The Sacred version these names are tested with (pinned in pyproject.toml).
TESTED_VERSION = "0.8.7"

#: Private methods of ``sacred.run.Run`` called or replaced here.
RUN_METHODS = ("_stop_heartbeat", "_emit_heartbeat", "_final_call", "_safe_call")

#: Private attributes a ``Run`` sets in its constructor (``_heartbeat`` and
#: ``_stop_heartbeat_event`` once started), read or replaced here.
RUN_ATTRIBUTES = ("_id", "_heartbeat", "_stop_heartbeat_event", "_failed_observers", "_metrics")

#: Private methods of ``SqlObserver`` that our subclass overrides: ``started_event`` and
#: ``queued_event`` call them.
SQL_OBSERVER_HOOKS = ("_add_event",)


def check_version() -> str | None:
    """Check the installed Sacred against :data:`TESTED_VERSION`.

    Returns:
        The one-line warning for an untested version whose private methods are all present
        (None for the tested version).

    Raises:
        ImportError: a method of :data:`RUN_METHODS` or :data:`SQL_OBSERVER_HOOKS` is missing.
    """
    missing = [f"Run.{name}" for name in RUN_METHODS if not hasattr(Run, name)]
    missing += [f"SqlObserver.{n}" for n in SQL_OBSERVER_HOOKS if not hasattr(SqlObserver, n)]
    return check_pinned("sacred", TESTED_VERSION, missing, "recording a run")


def _warn_if_untested() -> None:
    warn_untested(check_version())


_warn_if_untested()


def run_id(run: Any) -> Any:
    """The id the highest-priority observer gave ``run`` (None before it started, or no run)."""
    return getattr(run, "_id", None) if run is not None else None


def failed_observers(run: Any) -> list:
    """The observers Sacred dropped for the rest of ``run`` after one raised."""
    return run._failed_observers


def stop_sacred_heartbeat(run: Any) -> None:
    """Stop Sacred's own heartbeat timer of a started ``run``, without the beat it makes on
    stopping (a beat from the caller follows)."""
    timer = run._heartbeat
    if timer is not None:
        timer.func = _no_beat
        run._stop_heartbeat()


def _no_beat() -> None:
    return None


def use_heartbeat_thread(run: Any, thread: threading.Thread, stop: threading.Event) -> None:
    """Make ``thread`` the run's heartbeat: when the run stops, Sacred sets ``stop`` and joins
    ``thread`` (for up to 2 s) where it would stop its own timer."""
    run._stop_heartbeat_event, run._heartbeat = stop, thread


def emit_heartbeat(run: Any) -> None:
    """Sacred's beat: deliver the queued metrics, the run info and the captured output now."""
    run._emit_heartbeat()


def queued_metrics(run: Any) -> list:
    """Take the metric points logged since the last delivery (a list; empty when none)."""
    return run._metrics.get_last_metrics()


def call_observer(run: Any, observer: Any, method: str, **kwargs: Any) -> None:
    """Call ``observer.method(**kwargs)`` as Sacred does: an observer that raises is reported
    and dropped for the rest of the run."""
    run._safe_call(observer, method, **kwargs)


def skip_completed_for_failed_observers(run: Any) -> None:
    """Sacred sends ``completed_event`` even to an observer it dropped after an error, whose
    record then says COMPLETED while it lacks everything since: skip those."""
    final_call: Callable[..., None] = run._final_call

    def guarded(observer: Any, method: str, **kwargs: Any) -> None:
        if method == "completed_event" and observer in run._failed_observers:
            return
        final_call(observer, method, **kwargs)

    run._final_call = guarded


def release_captured_streams() -> int:
    """Point logging handlers made during a run back at the real stream; return how many.

    With ``--capture sys`` Sacred swaps ``sys.stdout``/``sys.stderr`` for a
    ``TeeingStreamProxy`` while the run lasts and closes the proxy's buffer after it. A handler
    created meanwhile (``logging.basicConfig``, which any library's module-level
    ``logging.info`` call triggers) keeps the proxy, and every record it gets after the run
    ends in ``--- Logging error ---`` (``I/O operation on closed file``), e.g. submitit's
    "Job completed successfully" in a Slurm task.
    """
    import logging

    from sacred.stdout_capturing import TeeingStreamProxy

    loggers = [logging.getLogger()]
    loggers += [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    released = 0
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            while isinstance(stream, TeeingStreamProxy):  # nested captures wrap proxies
                stream = stream.__wrapped__
            if stream is not None and stream is not getattr(handler, "stream", None):
                handler.setStream(stream)
                released += 1
    return released
