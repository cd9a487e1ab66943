"""Read runs from a MongoDB database written by Sacred's ``MongoObserver``.

Runs live in the ``runs`` collection and metric series in ``metrics``
(``{run_id, name, steps, values, timestamps}``). The database is the one the writer uses, by the
rule of :mod:`capreolus_opt.storage` (the URL's path, ``sacred`` when it is empty).

``client_factory(url) -> MongoClient`` is injectable so tests can pass a ``mongomock`` client; the
default is ``pymongo.MongoClient`` with a short server-selection timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from capreolus_opt.optional import require
from capreolus_opt.records.artifacts import mongo_artifacts
from capreolus_opt.records.record import LoadProblem, MetricSeries, RecordError, Run, build_run
from capreolus_opt.records.record import check_series as _check_series
from capreolus_opt.records.schema import MONGO_METRICS, MONGO_RUNS, Entry
from capreolus_opt.storage import MONGO_TIMEOUT_MS, Location, mask_urls

ClientFactory = Callable[[str], Any]


def _default_client(url: str) -> Any:
    pymongo = require("pymongo", "mongo")
    return pymongo.MongoClient(url, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS)


def _metrics_by_run(db: Any) -> dict[Any, dict[str, MetricSeries]]:
    out: dict[Any, dict[str, MetricSeries]] = {}
    for doc in db[MONGO_METRICS].find({}):
        name = doc.get("name")
        try:
            series = _check_series(str(name), doc.get("steps"), doc.get("values"))
        except RecordError:
            # Recorded on the run: mark it bad so the run itself is reported and skipped.
            out.setdefault(doc.get("run_id"), {})[f"\0bad:{name}"] = MetricSeries([], [])
            continue
        series.timestamps = doc.get("timestamps") or []
        out.setdefault(doc.get("run_id"), {})[name] = series
    return out


def read_mongo(
    location: Location, client_factory: ClientFactory | None = None
) -> tuple[list[Run], list[LoadProblem]]:
    """Read every run of the database at ``location``; bad documents become problems."""
    shown = location.shown
    factory = client_factory or _default_client
    runs: list[Run] = []
    problems: list[LoadProblem] = []
    pymongo_errors = require("pymongo.errors", "mongo")
    try:
        db = factory(location.url)[location.database]
        metrics = _metrics_by_run(db)
        for doc in db[MONGO_RUNS].find({}).sort("_id", 1):
            location = f"{shown} _id={doc.get('_id')}"
            series = metrics.get(doc.get("_id"), {})
            bad = [name[5:] for name in series if name.startswith("\0bad:")]
            if bad:
                problems.append(LoadProblem(location, f"metric {bad[0]!r} is malformed"))
                continue
            try:
                runs.append(
                    build_run(
                        source=shown,
                        sacred_id=doc.get("_id"),
                        status=doc.get(Entry.STATUS),
                        start_time=doc.get(Entry.START_TIME),
                        stop_time=doc.get(Entry.STOP_TIME),
                        heartbeat=doc.get(Entry.HEARTBEAT),
                        config=doc.get(Entry.CONFIG),
                        info=doc.get(Entry.INFO),
                        result=doc.get(Entry.RESULT),
                        metrics=series,
                    )
                )
                runs[-1].artifacts = mongo_artifacts(db, doc)  # records/per_query.py
            except RecordError as exc:
                problems.append(LoadProblem(location, str(exc)))
    except pymongo_errors.PyMongoError as exc:
        problems.append(LoadProblem(shown, f"cannot read MongoDB: {mask_urls(str(exc))}"))
    return runs, problems
