"""Per-query artifacts (``per_query_<split>.tsv``) read back through every observer kind.

Runs are written by real Sacred observers: FileStorage (artifact copied into the run folder), our
SQL observer on SQLite (a blob in Sacred's ``artifact`` table) and MongoObserver over mongomock
(GridFS); the per-query files are hand-written in the contract's format.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sacred import Experiment
from sacred.observers import FileStorageObserver

from capreolus_opt.records.load import load_runs
from capreolus_opt.records.per_query import PerQueryError, group_means, parse_per_query
from capreolus_opt.tracking.sql_observer import SqlMetricsObserver
from tests.recorded_runs import mongo_observer

PER_QUERY = (
    "qid\tmeasure\tvalue\n"
    "q1\tnDCG@10\t0.5\nq1\tRR@10\t1.0\n"
    "q2\tnDCG@10\t0.25\nq2\tRR@10\t0.5\n"
    "all\tnDCG@10\t0.375\n"
)


def _record(tmp_path: Any, observers: list, artifact: str | None, text: str = PER_QUERY) -> str:
    run_uuid = uuid.uuid4().hex
    ex = Experiment("per_query", save_git_info=False)
    ex.add_config(gin_files=[], gin_bindings=[], seed=0, hparams=[["train.seed", 0]])
    ex.observers.extend(observers)

    @ex.main
    def main(_run: Any) -> dict:
        _run.info["run_uuid"] = run_uuid
        _run.log_scalar("test/nDCG@10", 0.375, 8)
        if artifact is not None:
            path = tmp_path / f"{run_uuid}.tsv"
            path.write_text(text)
            _run.add_artifact(str(path), artifact)
        return {"test/nDCG@10": 0.375}

    ex.run(options={"--capture": "no"})
    return run_uuid


def test_per_query_values_through_file_sqlite_and_mongo(tmp_path, mongo_client):
    folder, db = tmp_path / "runs", f"sqlite:///{tmp_path / 'runs.db'}"
    observers = [
        FileStorageObserver(str(folder)),
        SqlMetricsObserver(db),
        mongo_observer(mongo_client),
    ]
    with_file = _record(tmp_path, observers, "per_query_test.tsv")
    without = _record(tmp_path, [FileStorageObserver(str(folder)), SqlMetricsObserver(db)], None)
    sources = {"file": [str(folder)], "sqlite": [db], "mongo": ["mongodb://localhost/sacred"]}
    for kind, source in sources.items():
        runs = {
            r.run_uuid: r for r in load_runs(*source, mongo_client_factory=lambda url: mongo_client)
        }
        run = runs[with_file]
        assert run.per_query("test/nDCG@10") == {"q1": 0.5, "q2": 0.25}, kind
        assert run.per_query("test/ndcg@10") == {"q1": 0.5, "q2": 0.25}, kind  # case folds
        assert run.per_query("test/RR@10") == {"q1": 1.0, "q2": 0.5}, kind
        assert run.per_query("dev/nDCG@10") is None, kind  # no per_query_dev.tsv
        assert run.per_query("test/P@5") is None, kind
        assert run.per_query("train/loss") is None, kind
        if kind != "mongo":
            assert runs[without].per_query("test/nDCG@10") is None, kind
    # Merged across observers, the run keeps its artifacts.
    merged = load_runs(str(folder), db)
    assert {r.run_uuid: r for r in merged}[with_file].per_query("test/RR@10")["q2"] == 0.5


def test_a_malformed_per_query_file_is_an_error_naming_file_and_line(tmp_path):
    folder = tmp_path / "runs"
    bad = "q1\tnDCG@10\t0.5\nq2\tnDCG@10\tabc\n"
    run_uuid = _record(tmp_path, [FileStorageObserver(str(folder))], "per_query_test.tsv", bad)
    (run,) = [r for r in load_runs(str(folder)) if r.run_uuid == run_uuid]
    with pytest.raises(PerQueryError, match=r"per_query_test.tsv line 2: value 'abc'"):
        run.per_query("test/nDCG@10")


@pytest.mark.parametrize(
    "text, message",
    [
        ("q1 nDCG@10 0.5\n", "expected 'qid<TAB>measure<TAB>value'"),
        ("q1\tnDCG@10\t0.5\nq1\tnDCG@10\t0.6\n", "query 'q1' has nDCG@10 twice"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_parse_rejects_bad_rows(text, message):
    data = text if isinstance(text, bytes) else text.encode()
    with pytest.raises(PerQueryError, match=message):
        parse_per_query(data, "per_query_test.tsv")


def test_group_means_average_seeds_on_common_queries():
    got = group_means([{"q1": 0.5, "q2": 0.2, "q3": 1.0}, {"q1": 0.7, "q2": 0.4}])
    assert got == pytest.approx({"q1": 0.6, "q2": 0.3})
