"""An ir_datasets id as the source, offline: a dataset registered from the bundled local files
gives exactly the experiment the files give, and the failures say what is wrong."""

from __future__ import annotations

import json
import shutil
import uuid

import numpy as np
import pytest

from capreolus_opt.data.trec.data import TrecRerankingData
from capreolus_opt.data.trec.formats import read_qrels, read_run, read_topics
from capreolus_opt.data.trec.irds import ir_datasets_files
from capreolus_opt.metrics.trec import MEASURES
from tests.cli_helpers import ROOT, run_cli

ir_datasets = pytest.importorskip("ir_datasets")
DATA = ROOT / "gin_configs" / "data" / "trec_smoke"
FILES = dict(
    collection=str(DATA / "collection.tsv"),
    topics=str(DATA / "topics.tsv"),
    qrels=str(DATA / "qrels.txt"),
)


@pytest.fixture
def local_id(tmp_path, monkeypatch):
    """A fresh ir_datasets id over the bundled files (no download: LocalDownload)."""
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecQrels, TrecScoredDocs, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds_home"))
    name = f"capreolus-test/{uuid.uuid4().hex[:8]}"
    ir_datasets.registry.register(
        name,
        Dataset(
            TsvDocs(LocalDownload(FILES["collection"])),
            TsvQueries(LocalDownload(FILES["topics"])),
            TrecQrels(LocalDownload(FILES["qrels"]), {0: "not", 1: "partly", 2: "highly"}),
            TrecScoredDocs(LocalDownload(str(DATA / "run.txt"))),
        ),
    )
    ir_datasets.registry.register(
        f"{name}/no-qrels", Dataset(TsvDocs(LocalDownload(FILES["collection"])))
    )
    return name


def test_converted_files_read_back_as_the_originals(local_id, tmp_path):
    files = ir_datasets_files(local_id, cache_dir=str(tmp_path / "cache"))
    assert set(files) == {"collection", "topics", "qrels", "first_stage_run"}
    assert read_topics(files["topics"]) == read_topics(FILES["topics"])
    assert read_qrels(files["qrels"]) == read_qrels(FILES["qrels"])
    assert read_run(files["first_stage_run"]) == read_run(str(DATA / "run.txt"))
    # A second call reuses the finished folder (no partial folder is ever left behind).
    assert ir_datasets_files(local_id, cache_dir=str(tmp_path / "cache")) == files
    assert not list((tmp_path / "cache" / "ir_datasets").glob("*.tmp*"))


def test_dataset_id_gives_the_same_experiment_as_the_files(local_id, tmp_path):
    common = dict(
        folds=str(DATA / "folds.json"), top_k=20, max_query_length=8, max_doc_length=48,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    by_files = TrecRerankingData(**FILES, first_stage_run=str(DATA / "run.txt"), **common)
    by_id = TrecRerankingData(dataset=local_id, **common)
    a, b = by_files.eval_index(), by_id.eval_index()
    assert (a.qid, a.docid) == (b.qid, b.docid)
    np.testing.assert_array_equal(a.first_stage_score, b.first_stage_score)
    assert by_files.qrels == by_id.qrels and by_files.folds == by_id.folds
    for field in ("query", "positive", "negative"):
        np.testing.assert_array_equal(
            getattr(by_files.train_triples(), field), getattr(by_id.train_triples(), field)
        )
    np.testing.assert_array_equal(by_files.eval_pairs().document, by_id.eval_pairs().document)
    # A file given beside the id wins over the dataset's own (here: the run is replaced).
    own = tmp_path / "own.run"
    lines = [
        f"{q} Q0 {d} {rank} {-score} mine\n"  # the bundled run with every score negated
        for q, docs in read_run(str(DATA / "run.txt")).items()
        for rank, (d, score) in enumerate(sorted(docs.items(), key=lambda x: x[1]), 1)
    ]
    own.write_text("".join(lines))
    mixed = TrecRerankingData(dataset=local_id, first_stage_run=str(own), **common)
    original = read_run(str(DATA / "run.txt"))
    m = mixed.eval_index()
    assert [-original[q][d] for q, d in zip(m.qid, m.docid, strict=True)] == list(
        m.first_stage_score
    )


def test_unknown_or_incomplete_datasets_are_named(local_id, tmp_path):
    cache = str(tmp_path / "cache")
    with pytest.raises(ValueError, match="'no/such-dataset' is not an ir_datasets id"):
        ir_datasets_files("no/such-dataset", cache_dir=cache)
    with pytest.raises(ValueError, match="has no queries or qrels"):
        ir_datasets_files(f"{local_id}/no-qrels", cache_dir=cache)
    assert not list((tmp_path / "cache" / "ir_datasets").glob("*"))
    with pytest.raises(ValueError, match="needs collection, topics, qrels: give the files, or"):
        TrecRerankingData()
    with pytest.raises(ValueError, match="dataset must be an ir_datasets id"):
        TrecRerankingData(dataset="")


_MODULE = """
from ir_datasets import registry
from ir_datasets.datasets.base import Dataset
from ir_datasets.formats import TrecQrels, TrecScoredDocs, TsvDocs, TsvQueries
from ir_datasets.util import LocalDownload

d = "gin_configs/data/trec_smoke"
registry.register("mine/smoke", Dataset(
    TsvDocs(LocalDownload(f"{d}/collection.tsv")), TsvQueries(LocalDownload(f"{d}/topics.tsv")),
    TrecQrels(LocalDownload(f"{d}/qrels.txt"), {0: "not", 1: "partly", 2: "highly"}),
    TrecScoredDocs(LocalDownload(f"{d}/run.txt")),
))
"""

_GIN = """import my_irds
include 'gin_configs/trec_reranker_smoke.gin'
TrecRerankingData.collection = None
TrecRerankingData.topics = None
TrecRerankingData.qrels = None
TrecRerankingData.first_stage_run = None
TrecRerankingData.dataset = %DATASET
"""


@pytest.mark.slow
def test_cli_trains_on_a_dataset_a_gin_import_registers(tmp_path, monkeypatch):
    """How a CLI user points at a local collection: a module that registers it, imported by
    the gin file; an unknown id ends before anything is recorded."""
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "my_irds.py").write_text(_MODULE)
    (tmp_path / "irds.gin").write_text(_GIN)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "mods"))
    monkeypatch.setenv("CAPREOLUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds_home"))
    common = ["--observer", "file://runs", "--gin_param"]
    proc = run_cli("train", "irds.gin", *common, 'DATASET = "nope/x"', cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "dataset 'nope/x' is not an ir_datasets id known here" in proc.stderr
    assert not (tmp_path / "runs").exists()
    proc = run_cli("train", "irds.gin", *common, 'DATASET = "mine/smoke"', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if p.name.isdigit()]
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "COMPLETED"
    assert {f"test/{m}" for m in MEASURES} <= set(record["result"])
    info = json.loads((folder / "info.json").read_text())
    assert info["task"]["queries"] == {"train": 16, "dev": 4, "test": 4}
