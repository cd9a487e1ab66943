"""MRR@k and nDCG@k over a whole evaluation set, in NumPy (host side).

Conventions (stated because ranking metrics differ in the details):

- Pairs are grouped by query id; each query's candidates are ranked by descending score.
- **Ties are broken pessimistically**: among equal scores, lower labels rank first (then the
  original order). A model that gives every candidate the same score therefore gets the worst
  ranking, never credit for the order the candidates happen to be listed in; the result is
  deterministic and independent of the input order.
- MRR@k: ``1 / rank`` of the first candidate with label > 0 if it is within the top ``k``, else 0.
- nDCG@k: ``DCG@k / IDCG@k`` with linear gain and log2 discount (trec_eval's ``ndcg_cut``):
  ``DCG@k = sum_{i=1..k} label_i / log2(i + 1)``; IDCG@k is the DCG@k of the candidates sorted
  by label, i.e. judged relevance only within the candidate set.
- Queries without any candidate of label > 0 are left out of the mean (as trec_eval does for
  queries without relevant documents); if no query is left, the metric is 0.0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def _rankings(qids: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """Per query (in order of first appearance), the labels in ranked order."""
    qids = np.asarray(qids).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if not qids.shape == scores.shape == labels.shape:
        raise ValueError(
            f"qids, scores and labels must have the same number of elements. Received: "
            f"{qids.shape[0]}, {scores.shape[0]}, {labels.shape[0]}"
        )
    if np.isnan(scores).any():
        raise ValueError(f"scores contain {int(np.isnan(scores).sum())} NaN values")
    out = []
    _, first, inverse = np.unique(qids, return_index=True, return_inverse=True)
    for group in np.argsort(first, kind="stable"):
        idx = np.flatnonzero(inverse == group)
        # np.lexsort sorts by the last key first: by -score, then label, then position.
        order = np.lexsort((idx, labels[idx], -scores[idx]))
        out.append(labels[idx][order].astype(np.float64))
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def mrr_at_k(qids: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean reciprocal rank of the first relevant candidate within the top ``k``."""
    values = []
    for ranked in _rankings(qids, scores, labels):
        if not (ranked > 0).any():
            continue
        first = int(np.argmax(ranked > 0))
        values.append(1.0 / (first + 1) if first < k else 0.0)
    return _mean(values)


def ndcg_at_k(qids: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Mean nDCG@k with linear gain (see the module docstring)."""
    values = []
    for ranked in _rankings(qids, scores, labels):
        if not (ranked > 0).any():
            continue
        top = ranked[:k]
        discounts = 1.0 / np.log2(np.arange(2, top.size + 2))
        ideal = np.sort(ranked)[::-1][:k]
        values.append(float(np.sum(top * discounts) / np.sum(ideal * discounts)))
    return _mean(values)


def ranking_metrics(outputs: Mapping[str, np.ndarray], k: int = 10) -> dict[str, float]:
    """``{"mrr@k": ..., "ndcg@k": ...}`` from ``outputs["qid"|"score"|"label"]``."""
    missing = {"qid", "score", "label"} - set(outputs)
    if missing:
        raise ValueError(
            f"ranking outputs need keys qid, score and label; missing {sorted(missing)}"
        )
    qid, score, label = outputs["qid"], outputs["score"], outputs["label"]
    return {
        f"mrr@{k}": mrr_at_k(qid, score, label, k),
        f"ndcg@{k}": ndcg_at_k(qid, score, label, k),
    }
