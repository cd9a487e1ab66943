"""TrecEvaluator: scores to split runs, dev metrics, interpolation chosen on dev, written files."""

from __future__ import annotations

import json

import ir_measures
import numpy as np
import pytest

from capreolus_opt.data.trec import data as trec_data
from capreolus_opt.data.trec.data import TrecRerankingData
from capreolus_opt.data.trec.generate import generate_trec_collection
from capreolus_opt.data.trec.measures import evaluate_run
from capreolus_opt.data.trec.runfile import interpolate
from capreolus_opt.models.trec_evaluation import TrecEvaluator


@pytest.fixture
def data(tmp_path):
    trec_data._MEMO.clear()
    paths = generate_trec_collection(str(tmp_path / "c"), num_queries=30, seed=2)
    yield TrecRerankingData(
        collection=paths["collection"], topics=paths["topics"], qrels=paths["qrels"],
        first_stage_run=paths["run"], top_k=15, seed=1, split_fractions=(0.4, 0.3, 0.3),
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    trec_data._MEMO.clear()


def _outputs(data, scores):
    n = len(scores)
    order = np.random.default_rng(0).permutation(n)  # replicas may return pairs in any order
    return {"pair": order.astype(np.int32), "score": np.asarray(scores)[order]}


def test_dev_metrics_runs_and_files(data, tmp_path):
    index = data.eval_index()
    rng = np.random.default_rng(3)
    scores = rng.normal(size=len(index.qid)) + 2.0 * data.eval_pairs().label
    evaluator = TrecEvaluator(data, selection_metric="ndcg@10", interpolate=False)
    dev = evaluator.metrics(_outputs(data, scores))
    split_qrels = evaluator.split_qrels()
    dev_run: dict = {}
    for i, (split, qid, docid) in enumerate(zip(index.split, index.qid, index.docid, strict=True)):
        if split == "dev":
            dev_run.setdefault(qid, {})[docid] = float(scores[i])
    assert dev == evaluate_run(split_qrels["dev"], dev_run)[0]
    paths = evaluator.record(7, str(tmp_path / "ev"))
    names = sorted(p.rsplit("/", 1)[1] for p in paths)
    assert names == [
        "dev.qrels", "step_00000007.dev.run", "step_00000007.metrics.json",
        "step_00000007.per_query.tsv", "step_00000007.test.run", "test.qrels",
    ]  # fmt: skip
    recorded = json.loads((tmp_path / "ev" / "step_00000007.metrics.json").read_text())
    on_files = ir_measures.calc_aggregate(
        [ir_measures.parse_measure("nDCG@10")],
        ir_measures.read_trec_qrels(str(tmp_path / "ev" / "test.qrels")),
        ir_measures.read_trec_run(str(tmp_path / "ev" / "step_00000007.test.run")),
    )
    assert recorded["test/ndcg@10"] == on_files[ir_measures.parse_measure("nDCG@10")]
    with pytest.raises(ValueError, match="expected each of"):
        evaluator.metrics({"pair": np.zeros(3, np.int32), "score": np.zeros(3)})


def test_interpolation_weight_is_chosen_on_dev_and_applied_to_test(data):
    index = data.eval_index()
    # A useless model (noise): mixing in the first stage can only help, so w > 0 is chosen.
    scores = np.random.default_rng(5).normal(size=len(index.qid))
    evaluator = TrecEvaluator(data, selection_metric="map", interpolate=True)
    dev = evaluator.metrics(_outputs(data, scores))
    weight = dev["interpolation_weight"]
    runs, first = {"dev": {}, "test": {}}, {"dev": {}, "test": {}}
    for i, (split, qid, docid) in enumerate(zip(index.split, index.qid, index.docid, strict=True)):
        runs[split].setdefault(qid, {})[docid] = float(scores[i])
        first[split].setdefault(qid, {})[docid] = float(index.first_stage_score[i])
    qrels = evaluator.split_qrels()
    by_weight = {
        w: evaluate_run(qrels["dev"], interpolate(runs["dev"], first["dev"], w))[0]["map"]
        for w in np.linspace(0, 1, 11).round(1)
    }
    assert dev["map"] == max(by_weight.values()) == by_weight[weight]
    assert weight > 0 and by_weight[weight] > by_weight[0.0]
    test = evaluate_run(qrels["test"], interpolate(runs["test"], first["test"], weight))[0]
    assert evaluator._last["metrics"]["test/map"] == test["map"]
    with pytest.raises(ValueError, match="selection_metric must be one of"):
        TrecEvaluator(data, selection_metric="p@5", interpolate=False)
