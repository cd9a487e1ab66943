"""Read runs from a SQL database written by Sacred's ``SqlObserver`` plus our metrics table.

Sacred's schema (``sacred/observers/sql_bases.py``) stores each run in ``run`` with ``config`` and
``info`` as JSON text; Sacred's SqlObserver drops metrics, so the tracking layer adds
``metrics(id, run_id -> run.id, name, step, value, timestamp)`` (docs/ARCHITECTURE.md) and, since
``run.result`` is a Float column, ``run_result(run_id -> run.id, result)`` with the result dict as
JSON (``tracking/sql_observer.py``); both tables are declared once, in
:mod:`capreolus_opt.storage.sql`, and read through that definition here. A database without a
``run`` table holds no runs; one without ``metrics`` yields runs without series and a reported
problem. Reading never writes: a SQLite file is opened read-only, and a missing one is a reported
problem, not a new empty database.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from capreolus_opt.records.artifacts import attach_sql_artifacts
from capreolus_opt.records.record import (
    LoadProblem,
    MetricSeries,
    RecordError,
    Run,
    build_run,
    check_series,
)
from capreolus_opt.records.schema import Entry
from capreolus_opt.storage import Location, LocationError, mask_urls


def _json_column(text: Any, what: str) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):
        return text  # a JSON column type already decoded it
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{what} is not valid JSON: {exc}") from exc


def _read_metrics(conn: Any, sa: Any) -> dict[int, dict[str, MetricSeries]]:
    from capreolus_opt.storage.sql import metrics_table as m

    rows = conn.execute(
        sa.select(m.c.run_id, m.c.name, m.c.step, m.c.value, m.c.timestamp).order_by(
            m.c.run_id, m.c.name, m.c.id
        )
    )
    raw: dict[int, dict[str, tuple[list, list, list]]] = defaultdict(dict)
    for run_id, name, step, value, stamp in rows:
        steps, values, stamps = raw[run_id].setdefault(name, ([], [], []))
        steps.append(step)
        values.append(value)
        stamps.append(stamp)
    out: dict[int, dict[str, MetricSeries]] = {}
    for run_id, by_name in raw.items():
        out[run_id] = {}
        for name, (steps, values, stamps) in by_name.items():
            series = check_series(name, steps, values)
            series.timestamps = stamps
            out[run_id][name] = series
    return out


def _read_results(conn: Any, sa: Any) -> dict[int, Any]:
    out = {}
    from capreolus_opt.storage.sql import result_table as r

    for run_id, text in conn.execute(sa.select(r.c.run_id, r.c.result)):
        try:
            out[run_id] = _json_column(text, "run_result.result")
        except RecordError:
            out[run_id] = None  # the run is still readable; its result falls back to eval series
    return out


def read_sql(location: Location) -> tuple[list[Run], list[LoadProblem]]:
    """Read every run in the SQL database at ``location``.

    Unreachable databases and corrupt rows become problems; nothing raises for bad content.
    """
    import sqlalchemy as sa

    from capreolus_opt.storage.sql import run_table as t
    from capreolus_opt.storage.sql import sql_engine

    shown = location.shown
    try:
        engine = sql_engine(location, read_only=True)
    except (LocationError, sa.exc.ArgumentError, ImportError) as exc:
        return [], [LoadProblem(shown, f"cannot open database: {mask_urls(str(exc))}")]
    runs: list[Run] = []
    problems: list[LoadProblem] = []
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table("run"):
                return [], []
            results = _read_results(conn, sa) if inspector.has_table("run_result") else {}
            metrics: dict[int, dict[str, MetricSeries]] = {}
            if inspector.has_table("metrics"):
                try:
                    metrics = _read_metrics(conn, sa)
                except RecordError as exc:
                    problems.append(LoadProblem(f"{shown} metrics", f"{exc}; read without metrics"))
            else:
                problems.append(LoadProblem(shown, "no metrics table; runs read without metrics"))
            rows = conn.execute(
                sa.select(
                    t.c.id, t.c.run_id, t.c.status, t.c.start_time, t.c.stop_time,
                    t.c.config, t.c.info, t.c.result, t.c.heartbeat,
                ).order_by(t.c.id)
            )  # fmt: skip
            for pk, run_id, status, start, stop, config, info, result, beat in rows:
                try:
                    info = _json_column(info, Entry.INFO)
                    result = results.get(pk, result)
                    runs.append(
                        build_run(
                            source=shown,
                            sacred_id=run_id,
                            status=status,
                            start_time=start,
                            stop_time=stop,
                            heartbeat=beat,
                            config=_json_column(config, Entry.CONFIG),
                            info=info,
                            result=result,
                            metrics=metrics.get(pk, {}),
                        )
                    )
                except RecordError as exc:
                    problems.append(LoadProblem(f"{shown} run.id={pk}", str(exc)))
            attach_sql_artifacts(conn, location, runs)  # per-query files (records/per_query.py)
    except sa.exc.SQLAlchemyError as exc:
        return runs, [*problems, LoadProblem(shown, f"cannot read database: {mask_urls(str(exc))}")]
    finally:
        engine.dispose()
    return runs, problems
