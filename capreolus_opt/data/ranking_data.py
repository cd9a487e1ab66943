"""The in-memory form of ranking data that every source produces, and its tf.data pipelines.

A source (``SyntheticRankingData``, ``TsvRankingData``) provides ``vocab_size``, ``pad_id``,
``train_triples() -> TrainTriples`` and ``eval_pairs() -> EvalPairs``: padded int32 token-id
arrays. The pipelines below turn them into the datasets of the Task protocol
(docs/ARCHITECTURE.md): an infinite, seed-deterministic training stream of fixed-size batches and a
finite, ordered evaluation stream.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class TrainTriples:
    """``query [N, Lq]``, ``positive [N, Ld]``, ``negative [N, Ld]`` int32 token ids: the positive
    document is more relevant to the query than the negative one."""

    query: np.ndarray
    positive: np.ndarray
    negative: np.ndarray

    def __len__(self) -> int:
        return int(self.query.shape[0])


@dataclasses.dataclass(frozen=True)
class EvalPairs:
    """``qid [N]`` int32 query ids, ``query [N, Lq]``, ``document [N, Ld]`` int32 token ids and
    ``label [N]`` int32 graded relevance (0 = not relevant)."""

    qid: np.ndarray
    query: np.ndarray
    document: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return int(self.qid.shape[0])


class RankingData(Protocol):
    """What ``RerankingTask`` needs from a data source."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    def train_triples(self) -> TrainTriples: ...

    def eval_pairs(self) -> EvalPairs: ...


def _check_batch_size(global_batch_size: int) -> None:
    if not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ValueError(
            f"global_batch_size must be a positive int. Received: {global_batch_size!r}"
        )


def epoch_permutation(n: int, seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Stateless random ops keep it independent of TensorFlow's global seed, so a resumed run (or one
    where the loop seeds TensorFlow differently) reads exactly the same stream.
    """
    keys = tf.random.stateless_uniform(
        [n], seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    )
    return tf.argsort(keys, stable=True)


def triples_dataset(triples: TrainTriples, *, global_batch_size: int, seed: int) -> tf.data.Dataset:
    """Infinite stream of ``{"query", "positive", "negative"}`` batches of exactly
    ``global_batch_size`` rows. Each epoch visits every triple once in an order drawn from
    ``(seed, epoch)``; batches run across epoch boundaries (so none is short and none is dropped
    except at infinity). Same ``seed`` => same stream, element for element."""
    _check_batch_size(global_batch_size)
    n = len(triples)
    if n == 0:
        raise ValueError("The training data has no triples.")
    arrays = {
        "query": tf.constant(triples.query, tf.int32),
        "positive": tf.constant(triples.positive, tf.int32),
        "negative": tf.constant(triples.negative, tf.int32),
    }
    indices = tf.data.Dataset.counter(dtype=tf.int64).flat_map(
        lambda epoch: tf.data.Dataset.from_tensor_slices(epoch_permutation(n, seed, epoch))
    )
    batches = indices.batch(global_batch_size, drop_remainder=True)
    return batches.map(
        lambda idx: {k: tf.gather(v, idx) for k, v in arrays.items()},
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).prefetch(tf.data.AUTOTUNE)


def eval_pairs_dataset(
    pairs: EvalPairs, *, global_batch_size: int, rows: np.ndarray | None = None
) -> tf.data.Dataset:
    """Finite stream of ``{"qid", "query", "document", "label", "pair"}`` batches in
    file/generation order (``pair`` is the row number, so outputs can be matched to pairs
    whatever order the replicas return them in); the last batch may be shorter (every pair is
    evaluated exactly once). ``rows`` (sorted row numbers) keeps only those pairs."""
    _check_batch_size(global_batch_size)
    index = np.arange(len(pairs)) if rows is None else np.asarray(rows, np.int64)
    ds = tf.data.Dataset.from_tensor_slices(
        {
            "qid": pairs.qid[index].astype(np.int32),
            "query": pairs.query[index].astype(np.int32),
            "document": pairs.document[index].astype(np.int32),
            "label": pairs.label[index].astype(np.int32),
            "pair": index.astype(np.int32),
        }
    )
    return ds.batch(global_batch_size, drop_remainder=False).prefetch(tf.data.AUTOTUNE)
