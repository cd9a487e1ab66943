"""load_runs over FileStorage, SQLite and mongomock records in the run-record contract's shape."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from capreolus_opt.records.load import load_runs
from capreolus_opt.records.record import best_direction
from tests.recorded_runs import GROUPS, Spec, lr_specs, record_run


def _check_against_spec(run, spec: Spec) -> None:
    assert run.hparams == dict(spec.hparams)
    assert run.gin_files == ["gin_configs/smoke.gin"]
    assert run.seed == 0
    assert [row["group"] for row in run.group_table] == list(GROUPS)
    for name, (steps, values) in spec.curves().items():
        series = run.metrics[name]
        np.testing.assert_array_equal(np.asarray(series.steps, dtype=np.float64), steps)
        np.testing.assert_allclose(series.values, values, rtol=1e-12)
        assert run.final(name) == pytest.approx(values[-1])
        if name.startswith("group/"):
            assert run.best(name) is None
        else:
            best = values.min() if name.endswith("loss") else values.max()
            assert run.best(name) == pytest.approx(best)
    assert run.duration is not None and run.duration >= 0


@pytest.mark.parametrize("kind", ["file", "sqlite", "mongo"])
def test_each_observer_reads_back_the_contract(observers, kind):
    specs = lr_specs()
    for spec in specs:
        record_run(spec, [observers[f"make_{'sql' if kind == 'sqlite' else kind}"]()])
    runs = load_runs(observers[kind], mongo_client_factory=observers["mongo_factory"])
    assert runs.problems == []
    assert [r.run_uuid for r in runs] == [s.run_uuid for s in specs]
    for run, spec in zip(runs, specs, strict=True):
        assert run.status == "COMPLETED"
        assert run.sources == [observers[kind]]
        _check_against_spec(run, spec)


def test_run_in_three_observers_is_merged(observers):
    specs = lr_specs((1e-3, 3e-4))
    for spec in specs:
        observed = [observers["make_file"](), observers["make_sql"](), observers["make_mongo"]()]
        record_run(spec, observed)
    runs = load_runs(
        observers["file"], observers["sqlite"], observers["mongo"],
        mongo_client_factory=observers["mongo_factory"],
    )  # fmt: skip
    assert runs.problems == []
    assert len(runs) == 2
    for run, spec in zip(runs, specs, strict=True):
        assert run.sources == [observers["file"], observers["sqlite"], observers["mongo"]]
        # Sacred numbers runs differently per observer (SQL from 0, file/Mongo from 1).
        assert len(run.sacred_ids) == 3
        _check_against_spec(run, spec)
    frame = runs.to_frame()
    assert list(frame["run_uuid"]) == [s.run_uuid for s in specs]
    np.testing.assert_allclose(frame["AdamMultilr.learning_rate"], [1e-3, 3e-4])
    long = runs.metrics_frame()
    assert len(long) == 2 * sum(len(v[0]) for v in specs[0].curves().values())


def test_corrupt_and_partial_run_folders_are_reported_and_skipped(observers):
    specs = lr_specs()
    for spec in specs:
        record_run(spec, [observers["make_file"]()])
    root = observers["file"]
    with open(os.path.join(root, "1", "metrics.json"), "w") as handle:
        handle.write('{"train/loss": {"steps": [1, 2], "values": [0.5')  # truncated write
    os.remove(os.path.join(root, "2", "info.json"))  # killed before the first heartbeat
    os.makedirs(os.path.join(root, "7"))  # an empty folder
    runs = load_runs(root)
    assert [r.run_uuid for r in runs] == [specs[2].run_uuid]
    reasons = {os.path.basename(p.location): p.reason for p in runs.problems}
    assert set(reasons) == {"1", "2", "7"}
    assert "metrics.json is unreadable" in reasons["1"]
    assert "run_uuid" in reasons["2"]
    assert "run.json is missing" in reasons["7"]


def test_mismatched_metric_lengths_are_reported(observers):
    spec = lr_specs((1e-3,))[0]
    record_run(spec, [observers["make_file"]()])
    path = os.path.join(observers["file"], "1", "metrics.json")
    with open(path) as handle:
        metrics = json.load(handle)
    metrics["train/loss"]["values"].pop()
    with open(path, "w") as handle:
        json.dump(metrics, handle)
    runs = load_runs(observers["file"])
    assert len(runs) == 0
    assert "'train/loss' has mismatched" in runs.problems[0].reason


def test_failed_run_is_read_with_its_status(observers):
    spec = Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]], fail=True)
    record_run(spec, [observers["make_file"](), observers["make_sql"]()])
    runs = load_runs(observers["file"], observers["sqlite"])
    assert [(r.run_uuid, r.status) for r in runs] == [(spec.run_uuid, "FAILED")]
    assert runs[0].result == {}


def test_empty_and_missing_sources(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(load_runs(str(empty))) == 0 and load_runs(str(empty)).problems == []
    runs = load_runs(f"sqlite:///{tmp_path / 'new.db'}")  # reading never creates a database
    assert len(runs) == 0 and "no SQLite database at" in runs.problems[0].reason
    assert not (tmp_path / "new.db").exists()
    runs = load_runs(str(tmp_path / "nope"))
    assert len(runs) == 0
    assert "not a directory" in runs.problems[0].reason


def test_unknown_scheme_raises_naming_it():
    with pytest.raises(ValueError, match="'ftp'"):
        load_runs("ftp://host/runs")


def test_best_direction_rule():
    assert best_direction("train/loss") == best_direction("eval/error_rate") == "min"
    assert best_direction("eval/loss") == "min"
    assert best_direction("eval/mrr@10") == best_direction("eval/ndcg@10") == "max"
    assert best_direction("group/head/lr") is None
    assert best_direction("group/encoder/grad_norm") is None


def test_corrupt_sql_row_and_mongo_metrics_are_reported(observers):
    import sqlalchemy as sa

    specs = lr_specs((1e-3, 3e-4))
    for spec in specs:
        record_run(spec, [observers["make_sql"](), observers["make_mongo"]()])
    engine = sa.create_engine(observers["sqlite"])
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE run SET config = '{\"hparams\": [' WHERE id = 1"))
    engine.dispose()
    client = observers["mongo_factory"]("")
    first = client["sacred"]["runs"].find_one({"info.run_uuid": specs[0].run_uuid})["_id"]
    client["sacred"]["metrics"].update_one(
        {"run_id": first, "name": "train/loss"}, {"$set": {"values": [0.1]}}
    )
    runs = load_runs(observers["sqlite"])
    assert [r.run_uuid for r in runs] == [specs[1].run_uuid]
    assert runs.problems[0].location.endswith("run.id=1")
    assert "config is not valid JSON" in runs.problems[0].reason
    runs = load_runs(observers["mongo"], mongo_client_factory=observers["mongo_factory"])
    assert [r.run_uuid for r in runs] == [specs[1].run_uuid]
    assert runs.problems[0].location.endswith(f"_id={first}")
    assert "'train/loss' is malformed" in runs.problems[0].reason


def test_merge_prefers_the_observer_that_saw_the_run_finish(observers):
    spec = lr_specs((1e-3,))[0]
    record_run(spec, [observers["make_file"](), observers["make_mongo"]()])
    client = observers["mongo_factory"]("")
    # The Mongo copy lags: still RUNNING with only the first two loss points.
    client["sacred"]["runs"].update_one({"_id": 1}, {"$set": {"status": "RUNNING"}})
    client["sacred"]["runs"].update_one({"_id": 1}, {"$unset": {"stop_time": ""}})
    doc = client["sacred"]["metrics"].find_one({"run_id": 1, "name": "train/loss"})
    client["sacred"]["metrics"].update_one(
        {"_id": doc["_id"]},
        {"$set": {"steps": doc["steps"][:2], "values": doc["values"][:2]}},
    )
    runs = load_runs(
        observers["mongo"], observers["file"], mongo_client_factory=observers["mongo_factory"]
    )
    assert len(runs) == 1 and runs.problems == []
    run = runs[0]
    assert run.status == "COMPLETED" and run.stop_time is not None
    assert run.sources == [observers["mongo"], observers["file"]]
    assert len(run.metrics["train/loss"]) == spec.steps
