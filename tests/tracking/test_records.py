"""Run records through ``capreolus-opt train`` (in-process, TensorFlow-free fake training).

Checks every observer kind holds the record of docs/ARCHITECTURE.md: config with hparams pairs,
info, artifacts, every logged metric point, result and status, for COMPLETED, FAILED and
INTERRUPTED runs; resume; an observer failing mid-run; passwords never written; and that one run
written to a FileStorage folder, SQLite and MongoDB reads back as equal ``Run`` values from each.
"""

from __future__ import annotations

import dataclasses
import json

import mongomock
import mongomock.gridfs
import pytest

from capreolus_opt.records import schema, status
from capreolus_opt.records.load import load_runs
from capreolus_opt.records.record import to_datetime
from capreolus_opt.records.schema import ArtifactName
from capreolus_opt.storage import parse_location
from capreolus_opt.tracking.observers import OwnIdFileStorageObserver
from capreolus_opt.tracking.run import RunRequest, run_tracked
from tests.tracking import fake_backend
from tests.tracking.tracking_helpers import (
    POSTGRES_URL,
    expected_points,
    file_metrics,
    file_runs,
    needs_postgres,
    sql_metrics,
    train,
    write_gin,
)


def _only_run(basedir):
    (run_dir,) = file_runs(basedir)
    return run_dir, json.loads((run_dir / "run.json").read_text())


def test_default_file_observer_records_everything(in_tmp, capsys):
    gin = write_gin(in_tmp / "a.gin", steps=5)
    assert train([gin]) == 0
    run_dir, run = _only_run(in_tmp / "runs")
    config = json.loads((run_dir / "config.json").read_text())
    info = json.loads((run_dir / "info.json").read_text())
    assert run["status"] == "COMPLETED"
    assert run["result"] == {"mrr@10": 0.55}
    assert config["gin_files"] == [gin] and config["gin_bindings"] == []
    assert ["train.steps", 5] in config["hparams"]
    assert all(isinstance(p, list) and len(p) == 2 for p in config["hparams"])
    assert len(info["run_uuid"]) == 32 and info["run_uuid"] in capsys.readouterr().out
    assert info["gin_config"] == "train.steps = 5\n"
    assert info["group_table"] == fake_backend.FakeTable().to_records()
    assert info["strategy"] == {"kind": "fake"} and info["versions"]["sacred"] == "0.8.7"
    assert info["workdir"] == str(in_tmp / "workdirs" / info["run_uuid"])
    assert sorted(run["artifacts"]) == ["checkpoint.txt", "group_table.csv", "operative_config.gin"]
    assert (run_dir / "operative_config.gin").read_text() == "train.steps = 5\n"
    assert (run_dir / "checkpoint.txt").read_text().strip() == info["checkpoint_path"]
    assert file_metrics(run_dir) == expected_points(range(1, 6))


def test_sqlite_and_file_observers_get_the_same_points(in_tmp):
    gin = write_gin(in_tmp / "a.gin", steps=4)
    url = f"sqlite:///{in_tmp}/r.db"
    assert train([gin, "--observer", "file://fs", "--observer", url]) == 0
    run_dir, run = _only_run(in_tmp / "fs")
    uuid = json.loads((run_dir / "info.json").read_text())["run_uuid"]
    assert file_metrics(run_dir) == expected_points(range(1, 5))
    assert sql_metrics(url, uuid) == expected_points(range(1, 5))


@pytest.mark.slow  # a PostgreSQL server
@needs_postgres
def test_postgresql_observer_records_metrics_result_and_status(in_tmp):
    import sqlalchemy as sa

    gin = write_gin(in_tmp / "a.gin", steps=3)
    assert train([gin, "--observer", POSTGRES_URL, "--observer", "file://fs"]) == 0
    run_dir, _ = _only_run(in_tmp / "fs")
    uuid = json.loads((run_dir / "info.json").read_text())["run_uuid"]
    assert sql_metrics(POSTGRES_URL, uuid) == expected_points(range(1, 4))
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT r.status, r.config, x.result FROM run r"
                " JOIN run_result x ON x.run_id = r.id"
                " WHERE r.info LIKE :u"
            ),
            {"u": f"%{uuid}%"},
        ).all()
    engine.dispose()
    ((status, config, result),) = rows
    assert status == "COMPLETED" and json.loads(result) == {"mrr@10": 0.53}
    assert ["train.steps", 3] in json.loads(config)["hparams"]


def test_mongodb_observer_with_mongomock_and_password_never_written(in_tmp, capsys, caplog):
    # No MongoDB server can be installed here: Sacred's MongoObserver runs against mongomock.
    mongomock.gridfs.enable_gridfs_integration()
    gin = write_gin(in_tmp / "a.gin", steps=3)
    secret = "Pa55w0rdXYZ"
    with mongomock.patch(servers=(("dbhost", 27017),)):
        url = f"mongodb://me:{secret}@dbhost:27017/exps"
        assert train([gin, "--observer", url, "--observer", "file://fs"]) == 0
        import pymongo

        client = pymongo.MongoClient("mongodb://dbhost:27017")
        run = client["exps"].runs.find_one()
        metrics = {
            m["name"]: list(zip(m["steps"], m["values"], strict=True))
            for m in client["exps"].metrics.find()
        }
        dump = json.dumps(list(client["exps"].runs.find()), default=str)
        client.close()
    assert run["status"] == "COMPLETED" and run["result"] == {"mrr@10": 0.53}
    assert ["train.steps", 3] in run["config"]["hparams"]
    assert metrics == expected_points(range(1, 4))
    out = capsys.readouterr()
    written = "".join(p.read_text(errors="replace") for p in in_tmp.rglob("*") if p.is_file())
    for text in (dump, written, out.out, out.err, caplog.text):
        assert secret not in text


def test_failed_run_records_traceback_and_points_before_failure(in_tmp, capsys):
    gin = write_gin(in_tmp / "a.gin", steps=6, fail_at=4)
    assert train([gin, "--observer", "file://fs", "--observer", f"sqlite:///{in_tmp}/r.db"]) == 1
    run_dir, run = _only_run(in_tmp / "fs")
    assert run["status"] == "FAILED"
    assert "RuntimeError: boom at step 4" in "".join(run["fail_trace"])
    assert file_metrics(run_dir) == expected_points(range(1, 4))
    assert "FAILED" in capsys.readouterr().err


def test_interrupted_run_then_resume_equals_uninterrupted(in_tmp, capsys):
    db = f"sqlite:///{in_tmp}/r.db"
    gin = write_gin(in_tmp / "a.gin", steps=7, ckpt_every=2)
    assert train([gin, "--observer", "file://fs", "--gin_param", "train.interrupt_at = 3"]) == 130
    first_dir, first = _only_run(in_tmp / "fs")
    assert first["status"] == "INTERRUPTED"
    first_info = json.loads((first_dir / "info.json").read_text())
    assert json.loads((in_tmp / "workdirs" / first_info["run_uuid"] / "ckpt.json").read_text()) == {
        "step": 3
    }
    # Resume by folder into file + SQL; the interrupt binding is overridden for the new run.
    argv = ["--resume", str(first_dir), "--observer", "file://fs", "--observer", db]
    assert train([*argv, "--gin_param", "train.interrupt_at = 0"]) == 0
    second_dir = file_runs(in_tmp / "fs")[1]
    second_info = json.loads((second_dir / "info.json").read_text())
    assert second_info["resumed_from"] == first_info["run_uuid"]
    assert second_info["workdir"] == first_info["workdir"]
    combined = {
        name: points + file_metrics(second_dir)[name]
        for name, points in file_metrics(first_dir).items()
    }
    assert combined == expected_points(range(1, 8))
    # Resume by UUID, looked up in the SQL database: a COMPLETED run continues only with more
    # steps.
    uuid = second_info["run_uuid"]
    assert train(["--resume", uuid, "--observer", db]) == 2
    assert "is COMPLETED, and a finished run is final" in capsys.readouterr().err
    assert train(["--resume", uuid, "--observer", db, "--gin_param", "train.steps = 9"]) == 0
    assert "COMPLETED" in capsys.readouterr().out


def test_resume_errors_are_input_errors(in_tmp, capsys):
    assert train(["--resume", "f" * 32, "--observer", "file://fs"]) == 2
    assert train(["--resume", "not-a-run"]) == 2
    assert train([]) == 2
    assert train(["missing.gin"]) == 2
    err = capsys.readouterr().err
    assert "no run with run_uuid" in err and "'not-a-run'" in err
    assert "missing.gin" in err
    assert not (in_tmp / "fs").exists() or not file_runs(in_tmp / "fs")


class _FailsAfterStart(OwnIdFileStorageObserver):
    """A FileStorage observer whose store breaks after the run started (disk gone, say)."""

    def log_metrics(self, metrics_by_name, info):
        raise OSError("disk unplugged")


def test_observer_failing_mid_run_does_not_stop_training_but_exits_3(in_tmp, monkeypatch, capsys):
    from capreolus_opt.tracking import urls

    real = urls._file_observer
    monkeypatch.setattr(
        urls,
        "_file_observer",
        lambda location: (
            _FailsAfterStart(location.target) if "broken" in location.url else real(location)
        ),
    )
    gin = write_gin(in_tmp / "a.gin", steps=4)
    # Exit 3: the run completed, but one observer's record is incomplete.
    assert train([gin, "--observer", "file://broken", "--observer", "file://good"]) == 3
    good_dir, good = _only_run(in_tmp / "good")
    assert good["status"] == "COMPLETED"
    assert file_metrics(good_dir) == expected_points(range(1, 5))
    _, broken = _only_run(in_tmp / "broken")
    # Sacred dropped it after its error; it must not be told COMPLETED while it lacks points.
    assert broken["status"] == "RUNNING"
    # Sacred reports the failing observer (by its URL) in the log and the captured output.
    report = "An error ocurred in the \"FileStorageObserver('broken')\" observer: disk unplugged"
    assert report.replace('"', "'") in (good_dir / "cout.txt").read_text()
    err = capsys.readouterr().err
    assert report.replace('"', "'") in err
    assert "error: observer FileStorageObserver('broken') failed during the run" in err


@pytest.mark.parametrize("flag", ["--observer", "--gin_param"])
def test_bad_input_exits_2_and_records_nothing(in_tmp, flag, capsys):
    gin = write_gin(in_tmp / "a.gin", steps=2)
    value = "ftp://x/y" if flag == "--observer" else "train.nonsense = 1"
    assert train([gin, "--observer", "file://fs", flag, value]) == 2
    assert not (in_tmp / "fs").exists() or not file_runs(in_tmp / "fs")
    assert value.split(" ")[0] in capsys.readouterr().err


#: Fields of a read ``Run`` that name where it was read (each store numbers its own runs).
STORE_SPECIFIC = ("sources", "sacred_ids", "artifacts")


def _ms(stamp):
    """A stored time at MongoDB's precision (milliseconds)."""
    if stamp is None:
        return None
    stamp = to_datetime(stamp)
    return stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)


def _comparable(run):
    """Every field of ``run`` but the store-specific ones, times at millisecond precision."""
    out = {}
    for field in dataclasses.fields(run):
        if field.name in STORE_SPECIFIC:
            continue
        value = getattr(run, field.name)
        if field.name in ("start_time", "stop_time", "heartbeat"):
            value = _ms(value)
        elif field.name == "metrics":
            value = {
                name: (series.steps, series.values, [_ms(t) for t in series.timestamps])
                for name, series in value.items()
            }
        out[field.name] = value
    return out


def test_a_run_written_to_file_sql_and_mongo_reads_back_equal_from_each(in_tmp):
    # Three runs through every store: interrupted, resumed to the end, continued with more steps
    # (so resumed_from, continued_from and start_step hold values too).
    mongomock.gridfs.enable_gridfs_integration()
    stores = {
        "file": f"file://{in_tmp}/fs",
        "sql": f"sqlite:///{in_tmp}/r.db",
        "mongo": "mongodb://dbhost:27017/exps",
    }
    gin = write_gin(in_tmp / "a.gin", steps=4, ckpt_every=1)
    observers = list(stores.values())
    with mongomock.patch(servers=(("dbhost", 27017),)):
        import pymongo

        outcomes = []
        for binding in ("train.interrupt_at = 2", "train.interrupt_at = 0", "train.steps = 6"):
            prior = outcomes[-1].run_uuid if outcomes else None
            request = RunRequest(
                gin_files=[] if prior else [gin],
                gin_bindings=[binding],
                observers=observers,
                resume=prior,
            )
            outcomes.append(run_tracked(request, backend=fake_backend, report=lambda line: None))
        client = pymongo.MongoClient("mongodb://dbhost:27017")
        read = {}
        for kind, url in stores.items():
            runs = load_runs(url, mongo_client_factory=lambda _url: client)
            assert runs.problems == [], kind
            read[kind] = {run.run_uuid: run for run in runs}
            for run in runs:  # artifact contents while the in-memory server lives
                run.artifact_bytes = {n: run.artifacts.read(n) for n in run.artifacts.names}
        client.close()

    assert [o.status for o in outcomes] == [status.INTERRUPTED, status.COMPLETED, status.COMPLETED]
    uuids = [o.run_uuid for o in outcomes]
    for kind, runs in read.items():
        assert sorted(runs) == sorted(uuids), kind
    first, resumed, continued = (read["file"][u] for u in uuids)
    # What was written is what reads back (checked on one store; the others equal it below).
    assert first.status == status.INTERRUPTED and resumed.resumed_from == first.run_uuid
    assert resumed.start_step == 2 and resumed.continued_from is None
    assert continued.continued_from == resumed.run_uuid and continued.start_step == 4
    assert continued.result == outcomes[2].result == {"mrr@10": 0.56}
    assert continued.hparams == dict(fake_backend.flat_hyperparameters())
    assert continued.gin_files == [gin]
    assert continued.group_table == fake_backend.FakeTable().to_records()
    points = {n: list(zip(s.steps, s.values, strict=True)) for n, s in continued.metrics.items()}
    assert points == expected_points(range(5, 7))
    assert sorted(continued.artifact_bytes) == sorted(schema.keys(ArtifactName))
    # Every key the writers store is one the schema names.
    for run_dir in file_runs(in_tmp / "fs"):
        assert set(json.loads((run_dir / "config.json").read_text())) == set(
            schema.keys(schema.ConfigKey)
        )
        assert set(json.loads((run_dir / "info.json").read_text())) <= set(
            schema.keys(schema.InfoKey)
        )
    for uuid in uuids:
        file_run = read["file"][uuid]
        for kind in ("sql", "mongo"):
            other = read[kind][uuid]
            assert _comparable(other) == _comparable(file_run), (kind, uuid)
            assert other.artifact_bytes == file_run.artifact_bytes, (kind, uuid)
            assert other.sources == [parse_location(stores[kind]).shown]
