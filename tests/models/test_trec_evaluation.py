"""TrecEvaluator: scores to split runs, dev metrics, interpolation chosen on dev, written files."""

from __future__ import annotations

import json

import ir_measures
import numpy as np
import pytest
import scipy.stats

from capreolus_opt.data.trec import data as trec_data
from capreolus_opt.data.trec.data import TrecRerankingData
from capreolus_opt.data.trec.generate import generate_trec_collection
from capreolus_opt.data.trec.runfile import interpolate
from capreolus_opt.metrics.trec import evaluate_run
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


def _outputs(evaluator, scores, split):
    rows = evaluator.rows(split)
    order = np.random.default_rng(0).permutation(rows)  # replicas may return pairs in any order
    return {"pair": order.astype(np.int32), "score": np.asarray(scores)[order]}


def _split_runs(data, scores, split):
    index = data.eval_index()
    run, first = {}, {}
    for i, (s, qid, docid) in enumerate(zip(index.split, index.qid, index.docid, strict=True)):
        if s == split:
            run.setdefault(qid, {})[docid] = float(scores[i])
            first.setdefault(qid, {})[docid] = float(index.first_stage_score[i])
    return run, first


def test_dev_metrics_runs_files_and_the_test_split_added_at_the_end(data, tmp_path):
    rng = np.random.default_rng(3)
    scores = rng.normal(size=len(data.eval_index().qid)) + 2.0 * data.eval_pairs().label
    evaluator = TrecEvaluator(data, selection_metric="ndcg@10", interpolate=False)
    dev = evaluator.metrics(_outputs(evaluator, scores, "dev"))
    split_qrels = evaluator.split_qrels()
    dev_run, dev_first = _split_runs(data, scores, "dev")
    expected = evaluate_run(split_qrels["dev"], dev_run)[0]
    assert {k: dev[k] for k in expected} == expected
    assert dev["first_stage/ndcg@10"] == evaluate_run(split_qrels["dev"], dev_first)[0]["ndcg@10"]
    assert dev["model/ndcg@10"] == expected["ndcg@10"]
    paths = evaluator.record(7, str(tmp_path / "ev"))
    names = sorted(p.rsplit("/", 1)[1] for p in paths)
    assert names == [
        "dev.qrels", "step_00000007.dev.run", "step_00000007.metrics.json",
        "step_00000007.per_query.tsv",
    ]  # fmt: skip
    # The test candidates, scored once at the end, join the same step's files.
    evaluator.test_metrics(_outputs(evaluator, scores, "test"), None)
    paths = evaluator.record_test(7, str(tmp_path / "ev"))
    assert sorted(p.rsplit("/", 1)[1] for p in paths) == [
        "step_00000007.metrics.json", "step_00000007.per_query.tsv",
        "step_00000007.test.run", "test.qrels",
    ]  # fmt: skip
    recorded = json.loads((tmp_path / "ev" / "step_00000007.metrics.json").read_text())
    on_files = ir_measures.calc_aggregate(
        [ir_measures.parse_measure("nDCG@10")],
        ir_measures.read_trec_qrels(str(tmp_path / "ev" / "test.qrels")),
        ir_measures.read_trec_run(str(tmp_path / "ev" / "step_00000007.test.run")),
    )
    assert recorded["test/ndcg@10"] == on_files[ir_measures.parse_measure("nDCG@10")]
    assert recorded["dev/ndcg@10"] == dev["ndcg@10"]
    per_query = (tmp_path / "ev" / "step_00000007.per_query.tsv").read_text().splitlines()
    assert {ln.split("\t")[0] for ln in per_query[1:]} == {"dev", "test"}
    with pytest.raises(ValueError, match="expected each of the"):
        evaluator.metrics({"pair": np.zeros(3, np.int32), "score": np.zeros(3)})


def test_significance_against_the_first_stage_matches_scipy_on_per_query_values(data):
    scores = np.random.default_rng(4).normal(size=len(data.eval_index().qid))
    scores += 1.5 * data.eval_pairs().label
    evaluator = TrecEvaluator(data, selection_metric="ndcg@10", interpolate=True)
    evaluator.metrics(_outputs(evaluator, scores, "dev"))
    flat = evaluator._last["dev"]["metrics"]
    qrels = evaluator.split_qrels()["dev"]
    run, first = _split_runs(data, scores, "dev")
    weight = flat["interpolation_weight"]
    for name, candidate in (("model", run), ("interpolated", interpolate(run, first, weight))):
        per_query = evaluate_run(qrels, candidate)[1]
        base = evaluate_run(qrels, first)[1]
        a = np.array([per_query.get(q, {}).get("ndcg@10", 0.0) for q in sorted(qrels)])
        b = np.array([base.get(q, {}).get("ndcg@10", 0.0) for q in sorted(qrels)])
        assert flat[f"dev/{name}/p_ttest"] == pytest.approx(
            scipy.stats.ttest_rel(a, b).pvalue, rel=1e-10, nan_ok=True
        )
        # 9 dev queries: the randomisation test enumerates every sign flip (exact p).
        d = a - b
        signs = 1 - 2 * ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1)
        exact = np.mean(np.abs(signs @ d) >= abs(d.sum()) * (1 - 1e-13))
        assert flat[f"dev/{name}/p_randomisation"] == pytest.approx(exact, abs=1e-12)
        wins, losses = int((d > 1e-9).sum()), int((d < -1e-9).sum())
        assert (flat[f"dev/{name}/wins"], flat[f"dev/{name}/losses"]) == (wins, losses)
        assert flat[f"dev/{name}/ties"] == d.size - wins - losses
    assert flat["dev/model/ndcg@10"] == evaluate_run(qrels, run)[0]["ndcg@10"]


def test_interpolation_weight_is_chosen_on_dev_and_applied_to_test(data):
    index = data.eval_index()
    # A useless model (noise): mixing in the first stage can only help, so w > 0 is chosen.
    scores = np.random.default_rng(5).normal(size=len(index.qid))
    evaluator = TrecEvaluator(data, selection_metric="map", interpolate=True)
    dev = evaluator.metrics(_outputs(evaluator, scores, "dev"))
    weight = dev["interpolation_weight"]
    runs, first = {}, {}
    for split in ("dev", "test"):
        runs[split], first[split] = _split_runs(data, scores, split)
    qrels = evaluator.split_qrels()
    by_weight = {
        w: evaluate_run(qrels["dev"], interpolate(runs["dev"], first["dev"], w))[0]["map"]
        for w in np.linspace(0, 1, 11).round(1)
    }
    assert dev["map"] == max(by_weight.values()) == by_weight[weight]
    assert weight > 0 and by_weight[weight] > by_weight[0.0]
    assert dev["model/map"] == by_weight[0.0]
    test = evaluate_run(qrels["test"], interpolate(runs["test"], first["test"], weight))[0]
    assert (
        evaluator.test_metrics(_outputs(evaluator, scores, "test"), weight)["test/map"]
        == (test["map"])
    )
    with pytest.raises(ValueError, match="needs the dev-chosen interpolation weight"):
        evaluator.test_metrics(_outputs(evaluator, scores, "test"), None)
    with pytest.raises(ValueError, match="selection_metric must be one of"):
        TrecEvaluator(data, selection_metric="p@5", interpolate=False)
