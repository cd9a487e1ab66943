"""``load_runs(*sources)``: read runs from any mix of observers and merge them by run UUID.

Sources are run locations as :mod:`capreolus_opt.storage` parses them, exactly the forms that
``train --observer`` accepts: a FileStorage folder (path or ``file://`` URL), ``sqlite:///PATH``,
``postgresql://...`` and ``mongodb://host/db``.

The same run stored by several observers (same ``info.run_uuid``) becomes one :class:`Run` whose
``sources`` lists them all. Two records that carry one UUID but are not copies of one run (two
in one store, or different hyperparameters or start times) are both skipped, with a problem
naming both places: a run is never credited with another record's results. Unreadable or partial
records never raise: they are skipped and listed
in ``RunList.problems``. Only a malformed source or one of no known kind raises
:class:`~capreolus_opt.storage.LocationError` (a ``ValueError``), before anything is read.

Example::

    runs = load_runs("runs", "sqlite:///runs.db")
    for problem in runs.problems:
        print("skipped", problem)
    frame = runs.to_frame()   # one row per run; runs.metrics_frame() has one row per point
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from capreolus_opt.records import status
from capreolus_opt.records.file import read_file_storage, read_run_folder
from capreolus_opt.records.mongo import ClientFactory, read_mongo
from capreolus_opt.records.record import LoadProblem, RecordError, Run
from capreolus_opt.records.sql import read_sql
from capreolus_opt.storage import Location, parse_location

_UUID = re.compile(r"^[0-9a-f]{32}$")


class RunList(list[Run]):
    """A list of runs plus the ``problems`` met while reading them."""

    def __init__(self, runs: list[Run] = (), problems: list[LoadProblem] = ()) -> None:
        super().__init__(runs)
        self.problems: list[LoadProblem] = list(problems)

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per run: ids, status, times, hparams, final metrics.

        Hyperparameter columns are named as recorded (``AdamMultilr.learning_rate``); metric
        columns hold the final value of each series (``train/loss``, ``eval/mrr@10``, ...).
        """
        import pandas as pd

        rows = []
        for run in self:
            row: dict[str, Any] = {
                "run_uuid": run.run_uuid,
                "status": run.status,
                "start_time": run.start_time,
                "stop_time": run.stop_time,
                "duration_s": run.duration,
                "sources": list(run.sources),
            }
            row.update(run.hparams)
            row.update({name: run.final(name) for name in sorted(run.metric_names())})
            rows.append(row)
        return pd.DataFrame(rows)

    def metrics_frame(self) -> Any:
        """A long pandas DataFrame with columns ``run_uuid, name, step, value``."""
        import pandas as pd

        columns: dict[str, list[Any]] = {"run_uuid": [], "name": [], "step": [], "value": []}
        for run in self:
            for name, series in run.metrics.items():
                columns["run_uuid"].extend([run.run_uuid] * len(series))
                columns["name"].extend([name] * len(series))
                columns["step"].extend(series.steps)
                columns["value"].extend(series.values)
        return pd.DataFrame(columns)


def _read_one(location: Location, mongo_client_factory: ClientFactory | None) -> tuple[list, list]:
    if location.kind == "file":
        return read_file_storage(location.target)
    if location.kind == "sql":
        return read_sql(location)
    return read_mongo(location, client_factory=mongo_client_factory)


def _merge(into: Run, other: Run) -> None:
    # Prefer the record that saw the run finish: a RUNNING copy is an observer that lagged.
    if into.status not in status.TERMINAL and other.status in status.TERMINAL:
        into.status, into.stop_time = other.status, other.stop_time
    elif into.status == status.DIED and other.status == status.RUNNING:
        # One observer's heartbeat went stale while another still hears from the run: alive.
        into.status = other.status
    into.start_time = into.start_time or other.start_time
    into.stopped_reason = into.stopped_reason or other.stopped_reason
    into.stop_time = into.stop_time or other.stop_time
    if not into.group_table:
        into.group_table = other.group_table
    if into.artifacts is None:
        into.artifacts = other.artifacts
    for name, series in other.metrics.items():
        if len(series) > len(into.metrics.get(name, ())):
            into.metrics[name] = series
    for key, value in other.result.items():
        into.result.setdefault(key, value)
    for source in other.sources:
        if source not in into.sources:
            into.sources.append(source)
    into.sacred_ids.update(other.sacred_ids)


#: Observers store one run's start time at different precisions (MongoDB: milliseconds).
_SAME_START_S = 1.0


def _place(run: Run) -> str:
    """Where a record is stored: its observer location and the observer's own id."""
    source = run.sources[0] if run.sources else "?"
    sacred_id = run.sacred_ids.get(source)
    return f"{source} (id {sacred_id})" if sacred_id is not None else source


def _conflict(existing: Run, run: Run) -> str | None:
    """Why two records with one ``run_uuid`` are not copies of one run (None: they are): the
    same run has one set of hyperparameters, one start, and one record per store."""
    for source, sacred_id in run.sacred_ids.items():
        if existing.sacred_ids.get(source, sacred_id) != sacred_id:
            return "two records in one store"
    if existing.hparams != run.hparams:
        return "different hyperparameters"
    if existing.start_time is not None and run.start_time is not None:
        if abs((existing.start_time - run.start_time).total_seconds()) > _SAME_START_S:
            return "different start times"
    return None


def load_runs(*sources: str, mongo_client_factory: ClientFactory | None = None) -> RunList:
    """Read and merge the runs of every source, in source order then stored order.

    Args:
        *sources: folder paths or observer URLs (see the module docstring).
        mongo_client_factory: ``url -> MongoClient``; default ``pymongo.MongoClient``.

    Returns:
        A :class:`RunList`; ``.problems`` names each skipped record or unreadable source.

    Raises:
        LocationError: a source is malformed or of no known kind (before anything is read).
    """
    locations = [parse_location(source) for source in sources]
    merged: dict[str, Run] = {}
    conflicted: dict[str, str] = {}  # run_uuid -> the first place it was recorded
    problems: list[LoadProblem] = []
    for location in locations:
        runs, source_problems = _read_one(location, mongo_client_factory)
        problems.extend(source_problems)
        for run in runs:
            uuid = run.run_uuid
            existing = merged.get(uuid)
            reason = _conflict(existing, run) if existing is not None else None
            if uuid in conflicted or reason:
                first = conflicted.setdefault(uuid, _place(existing) if existing else "?")
                merged.pop(uuid, None)
                problems.append(
                    LoadProblem(
                        _place(run),
                        f"run_uuid {uuid} is also recorded at {first}"
                        + (f" ({reason})" if reason else "")
                        + "; two records claim one run, so neither is shown",
                    )
                )
                continue
            if existing is not None:
                _merge(existing, run)
            else:
                merged[uuid] = run
    return RunList(list(merged.values()), problems)


def find_recorded_run(
    ref: str, sources: Sequence[str], *, mongo_client_factory: ClientFactory | None = None
) -> Run:
    """The run ``ref`` names: a FileStorage run folder, or a ``run_uuid`` (32 hex digits) looked
    up with :func:`load_runs` in ``sources`` (what ``train --resume`` continues).

    Raises:
        ValueError: ``ref`` is neither, the folder is not a readable run, or no source holds a
            run with that UUID (the message names the sources searched, masked).
    """
    if os.path.isdir(ref):
        try:
            return read_run_folder(ref, os.path.dirname(os.path.abspath(ref)))
        except RecordError as exc:
            raise ValueError(f"{ref!r} is not a readable run folder: {exc}.") from None
    if not _UUID.match(ref):
        raise ValueError(
            f"{ref!r} is neither a run folder (with run.json) nor a run UUID "
            "(32 hexadecimal digits, as `compare` and `train` print them)."
        )
    runs = load_runs(*sources, mongo_client_factory=mongo_client_factory)
    for run in runs:
        if run.run_uuid == ref:
            return run
    for problem in runs.problems:
        if f"run_uuid {ref} is also recorded" in problem.reason:
            raise ValueError(f"{problem.location}: {problem.reason}")
    searched = ", ".join(parse_location(s).shown for s in sources) or "no source"
    raise ValueError(f"no run with run_uuid {ref} in {searched}.")
