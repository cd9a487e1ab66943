"""Synthetic ranking data: determinism and the planted relevance."""

from __future__ import annotations

import numpy as np
import pytest

from capreolus_opt.data.synthetic import SyntheticRankingData

SMALL = dict(num_train_triples=200, num_eval_queries=20, eval_candidates=6)


def _arrays(data):
    t, e = data.train_triples(), data.eval_pairs()
    return [t.query, t.positive, t.negative, e.qid, e.query, e.document, e.label]


def test_same_seed_same_data_other_seed_other_data():
    a = _arrays(SyntheticRankingData(seed=3, **SMALL))
    b = _arrays(SyntheticRankingData(seed=3, **SMALL))
    c = _arrays(SyntheticRankingData(seed=4, **SMALL))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[5], c[5])


def test_eval_set_independent_of_train_size():
    a = SyntheticRankingData(seed=1, **SMALL).eval_pairs()
    b = SyntheticRankingData(seed=1, **{**SMALL, "num_train_triples": 50}).eval_pairs()
    np.testing.assert_array_equal(a.document, b.document)


def _topic_share(data, queries, docs):
    """Fraction of each document's non-PAD words owned by the topic of its query."""
    tw = data.words_per_topic
    q_topic = (queries[:, 0] - 2) // tw
    d_topic = np.where(docs >= 2, (docs - 2) // tw, -1)
    share = ((d_topic == q_topic[:, None]) & (docs > 0)).sum(1) / (docs > 0).sum(1)
    return share


def test_planted_relevance():
    data = SyntheticRankingData(seed=0, **SMALL)
    t = data.train_triples()
    # Queries use words of one topic only.
    tw = data.words_per_topic
    q = t.query
    topics = np.where(q > 0, (q - 2) // tw, -1)
    assert all(len(set(row[row >= 0])) == 1 for row in topics)
    assert ((q == 0) | ((q >= 2) & (q < 2 + data.num_topics * tw))).all()
    # Positives share the query's topic; negatives never do.
    assert (_topic_share(data, q, t.positive) > 0).mean() > 0.9
    assert (_topic_share(data, q, t.negative) == 0).all()
    assert t.positive.max() < data.vocab_size and t.negative.min() >= 0
    # Eval: per query one label 2, one label 1, the rest 0; label-2 docs the most topical.
    e = data.eval_pairs()
    for qid in range(20):
        labels = e.label[e.qid == qid]
        assert sorted(labels.tolist()) == [0, 0, 0, 0, 1, 2]
    share = _topic_share(data, e.query, e.document)
    assert share[e.label == 2].mean() > share[e.label == 1].mean() > 0
    assert (share[e.label == 0] == 0).all()


def test_padding_is_at_the_end_and_lengths_vary():
    t = SyntheticRankingData(seed=0, **SMALL).train_triples()
    lengths = (t.positive > 0).sum(1)
    # No PAD before a word: the non-PAD prefix is exactly `lengths` long.
    assert all(
        (row[:n] > 0).all() and (row[n:] == 0).all()
        for row, n in zip(t.positive, lengths, strict=True)
    )
    assert lengths.min() < lengths.max()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 100, "num_topics": 10, "words_per_topic": 10}, "vocab_size=100"),
        ({"topic_fraction": 0.0}, "topic_fraction"),
        ({"eval_candidates": 2}, "eval_candidates must be an integer >= 3"),
        ({"num_topics": 1}, "num_topics"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticRankingData(**kwargs)
