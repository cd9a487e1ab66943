"""Find an earlier run (by UUID or FileStorage run folder) so that a new run can continue it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_UUID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class PriorRun:
    """What a resumed run takes over from the run it continues."""

    run_uuid: str
    gin_files: list[str]
    gin_bindings: list[str]
    workdir: str
    status: str


def find_run(ref: str, observers: Sequence[Any]) -> PriorRun:
    """Return the run ``ref`` names: a FileStorage run folder, or a ``run_uuid`` looked up in
    every observer (FileStorage folders, SQL databases, MongoDB).

    Raises:
        ValueError: ``ref`` is neither a run folder nor a UUID, or no observer holds that run.
    """
    if os.path.isdir(ref):
        return _from_folder(ref)
    if not _UUID.match(ref):
        raise ValueError(
            f"--resume {ref!r} is neither a run folder (with run.json) nor a run UUID "
            "(32 hexadecimal digits, info.run_uuid)."
        )
    for observer in observers:
        found = _search(observer, ref)
        if found is not None:
            return found
    searched = ", ".join(repr(o) for o in observers) or "no observer"
    raise ValueError(f"--resume {ref!r}: no run with this run_uuid in {searched}.")


def _search(observer: Any, run_uuid: str) -> PriorRun | None:
    if hasattr(observer, "basedir"):
        return _search_folder(observer.basedir, run_uuid)
    if hasattr(observer, "engine"):
        return _search_sql(observer.engine, run_uuid)
    if hasattr(observer, "runs"):
        doc = observer.runs.find_one({"info.run_uuid": run_uuid})
        if doc is not None:
            return _prior(doc["config"], doc.get("info", {}), doc.get("status", ""))
    return None


def _search_folder(basedir: str, run_uuid: str) -> PriorRun | None:
    if not os.path.isdir(basedir):
        return None
    for name in os.listdir(basedir):
        info_path = os.path.join(basedir, name, "info.json")
        if os.path.isfile(info_path):
            with open(info_path, encoding="utf-8") as f:
                if json.load(f).get("run_uuid") == run_uuid:
                    return _from_folder(os.path.join(basedir, name))
    return None


def _search_sql(engine: Any, run_uuid: str) -> PriorRun | None:
    import sqlalchemy as sa

    query = sa.text("SELECT config, info, status FROM run WHERE info LIKE :pattern")
    with engine.connect() as connection:
        for config, info, status in connection.execute(query, {"pattern": f"%{run_uuid}%"}):
            info = json.loads(info or "{}")
            if info.get("run_uuid") == run_uuid:
                return _prior(json.loads(config), info, status or "")
    return None


def _from_folder(path: str) -> PriorRun:
    def load(name: str) -> dict:
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            raise ValueError(f"--resume {path!r} is not a run folder: {name} is missing.")
        with open(file, encoding="utf-8") as f:
            return json.load(f)

    return _prior(load("config.json"), load("info.json"), load("run.json").get("status", ""))


def _prior(config: dict, info: dict, status: str) -> PriorRun:
    if "workdir" not in info or "run_uuid" not in info:
        raise ValueError(
            f"run {info.get('run_uuid', '?')} has no recorded workdir/run_uuid "
            "(it stopped before training started), so it cannot be resumed."
        )
    return PriorRun(
        run_uuid=info["run_uuid"],
        gin_files=list(config.get("gin_files", [])),
        gin_bindings=list(config.get("gin_bindings", [])),
        workdir=info["workdir"],
        status=status,
    )
