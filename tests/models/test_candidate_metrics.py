"""MRR@k / nDCG@k against values computed by hand from the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from capreolus_opt.metrics.candidates import mrr_at_k, ndcg_at_k, ranking_metrics

LOG2_3 = np.log2(3.0)

# Query 7: ranked by score -> labels (0, 2, 1): first relevant at rank 2.
#   DCG = 0/1 + 2/log2(3) + 1/log2(4);  IDCG = 2/1 + 1/log2(3).
# Query 3: all scores tied -> pessimistic order (0, 0, 1): first relevant at rank 3.
#   DCG = 1/log2(4) = 0.5;  IDCG = 1.
# Query 5: no relevant candidate -> left out of both means.
QIDS = np.array([7, 7, 7, 3, 3, 3, 5, 5])
SCORES = np.array([0.9, 0.5, 0.7, 1.0, 1.0, 1.0, 0.2, 0.1])
LABELS = np.array([0, 1, 2, 1, 0, 0, 0, 0])
MRR = (1 / 2 + 1 / 3) / 2
NDCG = ((2 / LOG2_3 + 1 / 2) / (2 + 1 / LOG2_3) + 0.5) / 2


def test_hand_computed_values():
    assert mrr_at_k(QIDS, SCORES, LABELS, k=10) == pytest.approx(MRR, abs=1e-12)
    assert ndcg_at_k(QIDS, SCORES, LABELS, k=10) == pytest.approx(NDCG, abs=1e-12)


def test_input_order_does_not_matter():
    perm = np.random.default_rng(0).permutation(len(QIDS))
    assert mrr_at_k(QIDS[perm], SCORES[perm], LABELS[perm]) == pytest.approx(MRR, abs=1e-12)
    assert ndcg_at_k(QIDS[perm], SCORES[perm], LABELS[perm]) == pytest.approx(NDCG, abs=1e-12)


def test_ties_are_pessimistic_even_when_relevant_is_listed_first():
    # Constant scores must not earn credit for the listing order.
    qids, scores, labels = np.zeros(4), np.zeros(4), np.array([1, 0, 0, 0])
    assert mrr_at_k(qids, scores, labels) == pytest.approx(1 / 4)
    assert ndcg_at_k(qids, scores, labels) == pytest.approx(1 / np.log2(5))


def test_cutoff():
    # 12 candidates, the only relevant one ranked 11th: zero at k=10, counted at k=11.
    scores = -np.arange(12, dtype=float)
    labels = np.zeros(12, int)
    labels[10] = 3
    qids = np.ones(12)
    assert mrr_at_k(qids, scores, labels, k=10) == 0.0
    assert ndcg_at_k(qids, scores, labels, k=10) == 0.0
    assert mrr_at_k(qids, scores, labels, k=11) == pytest.approx(1 / 11)
    assert ndcg_at_k(qids, scores, labels, k=11) == pytest.approx(1 / np.log2(12))


def test_ideal_dcg_is_truncated_at_k():
    # Labels 1 (x3) and 2; k=2, ranking (1, 2, 1, 1): DCG@2 = 1 + 2/log2(3), IDCG@2 = 2 + 1/log2(3).
    qids, scores, labels = np.zeros(4), np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 2, 1, 1])
    assert ndcg_at_k(qids, scores, labels, k=2) == pytest.approx(
        (1 + 2 / LOG2_3) / (2 + 1 / LOG2_3), abs=1e-12
    )


def test_no_relevant_anywhere_gives_zero():
    assert mrr_at_k(np.zeros(3), np.arange(3.0), np.zeros(3)) == 0.0
    assert ndcg_at_k(np.zeros(3), np.arange(3.0), np.zeros(3)) == 0.0


def test_ranking_metrics_names_and_shapes():
    out = ranking_metrics(
        {"qid": QIDS.astype(np.int32), "score": SCORES[:, None].astype(np.float32), "label": LABELS}
    )
    assert set(out) == {"mrr@10", "ndcg@10"}
    assert out["mrr@10"] == pytest.approx(MRR, abs=1e-6)
    assert all(isinstance(v, float) for v in out.values())


def test_bad_inputs():
    with pytest.raises(ValueError, match="same number of elements"):
        mrr_at_k(QIDS, SCORES[:-1], LABELS)
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k(QIDS, np.full(len(QIDS), np.nan), LABELS)
    with pytest.raises(ValueError, match="missing \\['label'\\]"):
        ranking_metrics({"qid": QIDS, "score": SCORES})
