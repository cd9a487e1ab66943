"""tf.data pipelines of the Task protocol: infinite/deterministic training, finite evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt.data.ranking_data import (
    EvalPairs,
    TrainTriples,
    eval_pairs_dataset,
    triples_dataset,
)

N = 48


def _triples():
    # Row i is identifiable: query[i] == [i, i], positive[i] == [i + 100] * 3, ...
    idx = np.arange(N, dtype=np.int32)
    return TrainTriples(
        query=np.stack([idx, idx], 1),
        positive=np.repeat(idx[:, None] + 100, 3, 1),
        negative=np.repeat(idx[:, None] + 200, 3, 1),
    )


def _rows(ds, num_batches):
    return np.concatenate([b["query"][:, 0].numpy() for b in ds.take(num_batches)])


def test_batches_exact_aligned_and_infinite():
    ds = triples_dataset(_triples(), global_batch_size=10, seed=0)
    batches = list(ds.take(13))  # 130 rows > 2 epochs of 48: runs across epoch boundaries
    assert all(b[k].shape[0] == 10 for b in batches for k in ("query", "positive", "negative"))
    for b in batches:
        q = b["query"][:, 0].numpy()
        np.testing.assert_array_equal(b["positive"][:, 0].numpy(), q + 100)
        np.testing.assert_array_equal(b["negative"][:, 0].numpy(), q + 200)
    assert ds.element_spec["query"].shape.as_list() == [10, 2]


def test_each_epoch_is_a_permutation_and_epochs_differ():
    rows = _rows(triples_dataset(_triples(), global_batch_size=8, seed=5), 12)  # 2 epochs
    first, second = rows[:N], rows[N:]
    assert sorted(first) == list(range(N)) == sorted(second)
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(N))


def test_same_seed_same_stream_regardless_of_global_seed():
    tf.random.set_seed(1)
    a = _rows(triples_dataset(_triples(), global_batch_size=8, seed=7), 9)
    tf.random.set_seed(2)
    b = _rows(triples_dataset(_triples(), global_batch_size=8, seed=7), 9)
    c = _rows(triples_dataset(_triples(), global_batch_size=8, seed=8), 9)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Resuming = skipping batches: batch 5 onwards equals the tail of a fresh stream.
    skipped = _rows(triples_dataset(_triples(), global_batch_size=8, seed=7).skip(5), 4)
    np.testing.assert_array_equal(skipped, a[40:])


def test_eval_is_finite_ordered_and_complete():
    n = 23
    pairs = EvalPairs(
        qid=np.arange(n) // 5,
        query=np.arange(n)[:, None].repeat(2, 1),
        document=np.arange(n)[:, None].repeat(4, 1),
        label=np.arange(n) % 3,
    )
    batches = list(eval_pairs_dataset(pairs, global_batch_size=10))
    assert [b["qid"].shape[0] for b in batches] == [10, 10, 3]
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), pairs.label)
    again = list(eval_pairs_dataset(pairs, global_batch_size=10))
    np.testing.assert_array_equal(batches[1]["document"], again[1]["document"])


def test_bad_batch_size_and_empty():
    with pytest.raises(ValueError, match="global_batch_size must be a positive int. Received: 0"):
        triples_dataset(_triples(), global_batch_size=0, seed=0)
    empty = TrainTriples(*(np.zeros((0, 2), np.int32) for _ in range(3)))
    with pytest.raises(ValueError, match="no triples"):
        triples_dataset(empty, global_batch_size=2, seed=0)
