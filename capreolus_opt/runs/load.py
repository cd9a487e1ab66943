"""``load_runs(*sources)``: read runs from any mix of observers and merge them by run UUID.

Sources:
- a FileStorageObserver folder, as a path or ``file://`` URL;
- a SQLAlchemy URL (``sqlite:///runs.db``, ``postgresql+psycopg://...``, ``mysql://...``);
- a MongoDB URL (``mongodb://host/db``, ``mongodb+srv://...``).

The same run stored by several observers (same ``info.run_uuid``) becomes one :class:`Run` whose
``sources`` lists them all. Unreadable or partial records never raise: they are skipped and listed
in ``RunList.problems``. Only a source string of no known kind raises ``ValueError``.

Example::

    runs = load_runs("runs", "sqlite:///runs.db")
    for problem in runs.problems:
        print("skipped", problem)
    frame = runs.to_frame()   # one row per run; runs.metrics_frame() has one row per point
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from capreolus_opt.runs.file import read_file_storage
from capreolus_opt.runs.mongo import ClientFactory, read_mongo
from capreolus_opt.runs.records import LoadProblem, Run
from capreolus_opt.runs.sql import read_sql

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
_TERMINAL = ("COMPLETED", "FAILED", "INTERRUPTED", "TIMEOUT")


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


def source_kind(source: str) -> str:
    """Classify a source string as ``"file"``, ``"sql"`` or ``"mongo"``.

    Raises:
        ValueError: for a URL scheme that is none of these.
    """
    if "://" not in source:
        return "file"
    scheme = source.split("://", 1)[0].lower()
    if scheme == "file":
        return "file"
    if scheme.split("+", 1)[0] in _SQL_SCHEMES:
        return "sql"
    if scheme in ("mongodb", "mongodb+srv"):
        return "mongo"
    raise ValueError(
        f"run source {source!r} has an unknown scheme {scheme!r}; expected a folder path, "
        "file://, sqlite:///, postgresql://, mysql:// or mongodb:// URL"
    )


def _read_one(source: str, mongo_client_factory: ClientFactory | None) -> tuple[list, list]:
    kind = source_kind(source)
    if kind == "file":
        if source.startswith("file://"):
            # As tracking/urls.py: file://runs is relative (netloc "runs"), file:///abs absolute.
            parts = urlsplit(source)
            source = unquote(parts.netloc + parts.path)
        return read_file_storage(os.path.expanduser(source))
    if kind == "sql":
        return read_sql(source)
    return read_mongo(source, client_factory=mongo_client_factory)


def _merge(into: Run, other: Run) -> None:
    # Prefer the record that saw the run finish: a RUNNING copy is an observer that lagged.
    if into.status not in _TERMINAL and other.status in _TERMINAL:
        into.status, into.stop_time = other.status, other.stop_time
    into.start_time = into.start_time or other.start_time
    into.stopped_reason = into.stopped_reason or other.stopped_reason
    into.stop_time = into.stop_time or other.stop_time
    if not into.group_table:
        into.group_table = other.group_table
    for name, series in other.metrics.items():
        if len(series) > len(into.metrics.get(name, ())):
            into.metrics[name] = series
    for key, value in other.result.items():
        into.result.setdefault(key, value)
    for source in other.sources:
        if source not in into.sources:
            into.sources.append(source)
    into.sacred_ids.update(other.sacred_ids)


def load_runs(*sources: str, mongo_client_factory: ClientFactory | None = None) -> RunList:
    """Read and merge the runs of every source, in source order then stored order.

    Args:
        *sources: folder paths or observer URLs (see the module docstring).
        mongo_client_factory: ``url -> MongoClient``; default ``pymongo.MongoClient``.

    Returns:
        A :class:`RunList`; ``.problems`` names each skipped record or unreadable source.

    Raises:
        ValueError: if a source is of no known kind (checked before anything is read).
    """
    for source in sources:
        source_kind(source)
    merged: dict[str, Run] = {}
    problems: list[LoadProblem] = []
    for source in sources:
        runs, source_problems = _read_one(source, mongo_client_factory)
        problems.extend(source_problems)
        for run in runs:
            if run.run_uuid in merged:
                existing = merged[run.run_uuid]
                if existing.hparams != run.hparams:
                    problems.append(
                        LoadProblem(
                            f"{run.sources[0]} run {run.run_uuid}",
                            "same UUID with different hyperparameters than in "
                            f"{existing.sources[0]}; kept the first",
                        )
                    )
                    continue
                _merge(existing, run)
            else:
                merged[run.run_uuid] = run
    return RunList(list(merged.values()), problems)
