"""Read runs from a Sacred ``FileStorageObserver`` folder.

Layout (Sacred 0.8.7): ``<root>/<id>/run.json`` (status, times, result), ``config.json``,
``info.json`` (written at the first heartbeat) and ``metrics.json``
(``{name: {"steps": [...], "values": [...], "timestamps": [...]}}``). Folders starting with ``_``
(``_sources``, ``_resources``) are Sacred's shared stores, not runs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from capreolus_opt.records.per_query import ArtifactAccess
from capreolus_opt.records.record import (
    LoadProblem,
    MetricSeries,
    RecordError,
    Run,
    build_run,
    check_steps,
)
from capreolus_opt.records.schema import CONFIG_FILE, INFO_FILE, METRICS_FILE, RUN_FILE, Entry
from capreolus_opt.storage.paths import check_file_name, safe_join


def _load_json(path: str, *, required: bool) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        if required:
            raise RecordError(f"{os.path.basename(path)} is missing") from exc
        return None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RecordError(f"{os.path.basename(path)} is unreadable: {exc}") from exc


def _metrics(raw: Any) -> dict[str, MetricSeries]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RecordError(f"{METRICS_FILE} is not a mapping of metric names")
    out = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise RecordError(f"metric {name!r} in {METRICS_FILE} is not a mapping")
        steps, values = entry.get("steps"), entry.get("values")
        if not isinstance(steps, list) or not isinstance(values, list) or len(steps) != len(values):
            raise RecordError(f"metric {name!r} has mismatched or missing steps/values")
        # json.load already produced Python numbers; a per-point float() pass here would be the
        # reader's dominant cost (benchmarks/load_runs.py), so only non-numbers are converted.
        if not all(type(v) is float for v in values):
            values = _coerce(name, values)
        check_steps(name, steps)
        out[name] = MetricSeries(steps=steps, values=values, timestamps=entry.get("timestamps", []))
    return out


def _coerce(name: str, values: list[Any]) -> list[float]:
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | type(None)):
            raise RecordError(f"metric {name!r} has a non-numeric value {value!r}")
        out.append(float("nan") if value is None else float(value))
    return out


def read_run_folder(path: str, source: str) -> Run:
    """Read one run folder; raise RecordError when it is corrupt or partial."""
    run = _load_json(os.path.join(path, RUN_FILE), required=True)
    if not isinstance(run, dict):
        raise RecordError(f"{RUN_FILE} is not a JSON object")
    config = _load_json(os.path.join(path, CONFIG_FILE), required=True)
    info = _load_json(os.path.join(path, INFO_FILE), required=False)
    metrics = _metrics(_load_json(os.path.join(path, METRICS_FILE), required=False))
    built = build_run(
        source=source,
        sacred_id=os.path.basename(path),
        status=run.get(Entry.STATUS),
        start_time=run.get(Entry.START_TIME),
        stop_time=run.get(Entry.STOP_TIME),
        heartbeat=run.get(Entry.HEARTBEAT),
        config=config,
        info=info,
        result=run.get(Entry.RESULT),
        metrics=metrics,
    )
    built.artifacts = _artifacts(path, run.get(Entry.ARTIFACTS))
    return built


def _artifacts(folder: str, names: Any) -> ArtifactAccess | None:
    # Sacred's FileStorageObserver copies each artifact into the run folder under its name.
    if not isinstance(names, list) or not names:
        return None
    for name in names:
        try:
            check_file_name(name, "artifact")
        except ValueError as exc:
            raise RecordError(f"run.json lists {exc}") from None

    def read(name: str) -> bytes:
        with open(safe_join(folder, name), "rb") as handle:
            return handle.read()

    return ArtifactAccess(list(names), read)


def read_file_storage(root: str) -> tuple[list[Run], list[LoadProblem]]:
    """Read every run folder under ``root``; corrupt or partial ones become problems."""
    if not os.path.isdir(root):
        return [], [LoadProblem(root, "not a directory (expected a FileStorageObserver folder)")]
    runs: list[Run] = []
    problems: list[LoadProblem] = []
    entries = sorted(
        (e for e in os.scandir(root) if e.is_dir() and not e.name.startswith("_")),
        key=lambda e: (not e.name.isdigit(), int(e.name) if e.name.isdigit() else 0, e.name),
    )
    for entry in entries:
        try:
            runs.append(read_run_folder(entry.path, root))
        except RecordError as exc:
            problems.append(LoadProblem(entry.path, str(exc)))
    return runs, problems
