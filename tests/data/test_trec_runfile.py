"""Run files (ranks, ties, exact scores), interpolation, and metrics equal to ir_measures on the
written files, checked against an independent float64 NumPy reference of trec_eval's formulas."""

from __future__ import annotations

import math
import os

import ir_measures
import numpy as np
import pytest

from capreolus_opt.data.trec.formats import read_run
from capreolus_opt.data.trec.runfile import interpolate, ranked, top_k, write_qrels, write_run
from capreolus_opt.metrics.trec import MEASURES, evaluate_run


def test_ranks_follow_trec_eval_order_and_scores_round_trip(tmp_path):
    run = {"q2": {"a": 0.5, "b": 0.5, "c": 1 / 3}, "q1": {"z": -1e-9, "y": 2.0}}
    path = write_run(str(tmp_path / "r.run"), run, tag="t1")
    lines = (tmp_path / "r.run").read_text().splitlines()
    assert [ln.split()[:4] for ln in lines] == [
        ["q1", "Q0", "y", "1"],
        ["q1", "Q0", "z", "2"],
        # Tied scores: descending docid, as trec_eval sorts.
        ["q2", "Q0", "b", "1"],
        ["q2", "Q0", "a", "2"],
        ["q2", "Q0", "c", "3"],
    ]
    assert read_run(path) == run  # every float64 score reads back exactly
    assert os.listdir(tmp_path) == ["r.run"]
    assert ranked({"a": 1.0, "b": 1.0}) == [("b", 1.0), ("a", 1.0)]
    assert top_k(run, 1) == {"q2": {"b": 0.5}, "q1": {"y": 2.0}}
    with pytest.raises(ValueError, match="tag must be"):
        write_run(str(tmp_path / "x.run"), run, tag="two words")


def test_interpolation_weights():
    rerank = {"q": {"a": 10.0, "b": 0.0, "c": 5.0}}
    first = {"q": {"a": 1.0, "b": 3.0, "c": 2.0}}
    assert interpolate(rerank, first, 0.0) == {"q": {"a": 1.0, "b": 0.0, "c": 0.5}}
    assert interpolate(rerank, first, 1.0) == {"q": {"a": 0.0, "b": 1.0, "c": 0.5}}
    mixed = interpolate(rerank, first, 0.25)["q"]
    assert mixed == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.5})
    with pytest.raises(ValueError, match="weight must be in"):
        interpolate(rerank, first, 1.5)


def _reference(qrels: dict, run: dict) -> dict[str, float]:
    """trec_eval's formulas over every judged query (float64, no ties in ``run``)."""
    out: dict[str, list[float]] = {name: [] for name in MEASURES}
    for qid, judged in qrels.items():
        docs = sorted(run.get(qid, {}).items(), key=lambda x: -x[1])
        gains = np.array([max(judged.get(d, 0), 0) for d, _ in docs], np.float64)
        rel = gains > 0
        n_rel = sum(1 for g in judged.values() if g > 0)
        disc = 1 / np.log2(np.arange(2, 12))
        ideal = np.sort([g for g in judged.values() if g > 0])[::-1][:10]
        idcg = float(np.sum(ideal * disc[: len(ideal)]))
        dcg = float(np.sum(gains[:10] * disc[: min(10, len(gains))]))
        out["ndcg@10"].append(dcg / idcg if idcg else 0.0)
        first = np.flatnonzero(rel[:10])
        out["mrr@10"].append(1 / (first[0] + 1) if first.size else 0.0)
        precisions = np.cumsum(rel) / np.arange(1, len(rel) + 1)
        out["map"].append(float(np.sum(precisions[rel]) / n_rel) if n_rel else 0.0)
        out["recall@100"].append(float(rel[:100].sum() / n_rel) if n_rel else 0.0)
        top = [d for d, _ in docs[:10]]
        out["judged@10"].append(sum(d in judged for d in top) / len(top) if top else 0.0)
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_metrics_equal_ir_measures_on_the_written_files_and_trec_eval_formulas(tmp_path):
    rng = np.random.default_rng(0)
    qrels, run = {}, {}
    for q in range(12):
        qid = f"q{q}"
        docs = [f"d{q}_{i}" for i in range(30)]
        # q0 has judgments but nothing relevant; q1's relevant documents are never retrieved
        # (IDCG and recall count them anyway); others judge some candidates and some others.
        qrels[qid] = {d: int(rng.integers(0, 3)) if q else 0 for d in docs[:12]}
        qrels[qid].update({f"unretrieved{q}_{i}": 1 for i in range(3)})
        if q == 1:
            qrels[qid] = {d: 0 for d in docs[:12]} | {"unretrieved": 2}
        run[qid] = {d: float(s) for d, s in zip(docs, rng.normal(size=30), strict=True)}
    del run["q11"]  # judged, not in the run: counts 0 (ir_measures' -c behaviour)
    agg, per_query = evaluate_run(qrels, run)
    qrels_path = write_qrels(str(tmp_path / "test.qrels"), qrels)
    run_path = write_run(str(tmp_path / "test.run"), run)
    measures = [ir_measures.parse_measure(m) for m in MEASURES.values()]
    on_files = ir_measures.calc_aggregate(
        measures, ir_measures.read_trec_qrels(qrels_path), ir_measures.read_trec_run(run_path)
    )
    for name, text in MEASURES.items():
        assert agg[name] == on_files[ir_measures.parse_measure(text)], name
    reference = _reference(qrels, run)
    for name in MEASURES:
        assert agg[name] == pytest.approx(reference[name], rel=1e-12, abs=1e-12), name
    assert per_query["q0"]["ndcg@10"] == 0.0 and per_query["q1"]["recall@100"] == 0.0
    assert len(per_query) == 12
    assert math.isclose(np.mean([v["map"] for v in per_query.values()]), agg["map"])
