"""Attach lazy artifact access (records/per_query.py) to runs read from SQL and MongoDB.

Sacred 0.8.7's SqlObserver stores each artifact as a row of ``artifact(artifact_id, filename,
content, run_id -> run.run_id)`` (``run.run_id`` is Sacred's id string, not the primary key);
its MongoObserver stores the bytes in GridFS and lists ``{"name", "file_id"}`` in the run
document's ``artifacts``. Only the names are read with the runs; contents on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capreolus_opt.records.per_query import ArtifactAccess
from capreolus_opt.records.record import Run
from capreolus_opt.records.schema import Entry
from capreolus_opt.storage import Location


def attach_sql_artifacts(conn: Any, location: Location, runs: Sequence[Run]) -> None:
    """Give each run of ``runs`` (read from ``location``) the names of its SQL artifacts."""
    shown = location.shown
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table("artifact"):
        return
    by_run: dict[str, dict[str, int]] = {}
    rows = conn.execute(sa.text("SELECT artifact_id, run_id, filename FROM artifact"))
    for artifact_id, run_id, filename in rows:
        by_run.setdefault(str(run_id), {})[str(filename)] = artifact_id
    for run in runs:
        ids = by_run.get(run.sacred_ids.get(shown, ""))
        if ids:
            run.artifacts = ArtifactAccess(list(ids), _sql_reader(location, ids))


def _sql_reader(location: Location, ids: dict[str, int]) -> Any:
    def read(name: str) -> bytes:
        import sqlalchemy as sa

        from capreolus_opt.storage.sql import sql_engine

        engine = sql_engine(location, read_only=True)
        try:
            with engine.connect() as conn:
                query = sa.text("SELECT content FROM artifact WHERE artifact_id = :id")
                content = conn.execute(query, {"id": ids[name]}).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            raise OSError(f"cannot read artifact {name!r}: {exc}") from exc
        finally:
            engine.dispose()
        return bytes(content)

    return read


def mongo_artifacts(db: Any, doc: Any) -> ArtifactAccess | None:
    """Artifact access for one Sacred run document of MongoDB database ``db``."""
    entries = doc.get(Entry.ARTIFACTS) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return None
    ids = {
        e["name"]: e["file_id"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("name"), str) and "file_id" in e
    }
    if not ids:
        return None

    def read(name: str) -> bytes:
        import gridfs

        try:
            return gridfs.GridFS(db).get(ids[name]).read()
        except gridfs.errors.GridFSError as exc:
            raise OSError(f"GridFS file of artifact {name!r}: {exc}") from exc

    return ArtifactAccess(list(ids), read)
