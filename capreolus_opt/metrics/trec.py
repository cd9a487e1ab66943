"""Ranking metrics with ``ir_measures`` (trec_eval semantics), aggregate and per query.

The measures are ``nDCG@10``, ``RR@10``, ``AP``, ``R@100`` and ``Judged@10``, recorded as
``ndcg@10``, ``mrr@10``, ``map``, ``recall@100`` and ``judged@10``, averaged over every query of
the qrels passed in (the caller passes one split's judgments). They follow trec_eval: IDCG and
recall count every judged document of the query (not only the candidates); a query with
judgments but no relevant document is in the mean with 0; a judged query that is missing from
the run also counts 0 (``ir_measures`` behaves as ``trec_eval -c``). nDCG, AP and recall come
from trec_eval itself (``pytrec_eval``); ``RR@10`` is ir_measures' MS MARCO implementation,
which breaks score ties by ascending docid where trec_eval uses descending: with tied scores the
two orders can differ, so the recorded number is always ``ir_measures`` on the written files
(``runfile.write_run``): ``ir_measures SPLIT.qrels RUN 'nDCG@10 RR@10 AP R@100 Judged@10'``.
"""

from __future__ import annotations

from collections.abc import Mapping

from capreolus_opt.data.trec.runfile import ranked
from capreolus_opt.optional import require

#: recorded name -> ir_measures measure name
MEASURES = {
    "ndcg@10": "nDCG@10",
    "mrr@10": "RR@10",
    "map": "AP",
    "recall@100": "R@100",
    "judged@10": "Judged@10",
}


def _parsed() -> dict:
    ir_measures = require("ir_measures", "trec")  # only needed to evaluate

    return {name: ir_measures.parse_measure(text) for name, text in MEASURES.items()}


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """``(aggregate {name: value}, per query {qid: {name: value}})`` of ``run`` against
    ``qrels`` (one split's judgments; see the module docstring)."""
    ir_measures = require("ir_measures", "trec")
    measures = _parsed()
    by_measure = {m: name for name, m in measures.items()}
    # In the order of the written files (queries sorted, documents ranked): some providers
    # average in input order, and a different float summation order changes the last digit.
    qrels = {q: dict(sorted(qrels[q].items())) for q in sorted(qrels)}
    run = {q: {d: float(s) for d, s in ranked(run[q])} for q in sorted(run)}
    per_query: dict[str, dict[str, float]] = {}
    for metric in ir_measures.iter_calc(list(measures.values()), qrels, run):
        per_query.setdefault(metric.query_id, {})[by_measure[metric.measure]] = float(metric.value)
    agg = ir_measures.calc_aggregate(list(measures.values()), qrels, run)
    return {name: float(agg[m]) for name, m in measures.items()}, per_query
