"""``RerankingTask``: the text-pair reranker behind the Task protocol (docs/ARCHITECTURE.md).

Training examples are (query, positive document, negative document) triples; the loss scores
both documents against the query and applies a pairwise hinge or softmax ranking loss
(``models/losses.py``). Evaluation scores labelled (qid, query, document) pairs and reports
MRR@10 and nDCG@10 per query, averaged (``models/ranking_metrics.py``).

Example::

    from capreolus_opt.data.synthetic import SyntheticRankingData
    task = RerankingTask(data=SyntheticRankingData(seed=0), num_layers=2, loss="softmax")
    model = task.build_model()
    batch = next(iter(task.train_dataset(global_batch_size=32, seed=0)))
    loss = task.per_example_loss(model, batch, training=True)   # shape [32]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from capreolus_opt.data.ranking_data import (
    EvalPairs,
    RankingData,
    TrainTriples,
    eval_pairs_dataset,
    triples_dataset,
)
from capreolus_opt.models.encoder import build_reranker
from capreolus_opt.models.losses import LOSSES, ranking_loss
from capreolus_opt.models.ranking_metrics import ranking_metrics

# model_builder(vocab_size=, query_length=, document_length=, pad_id=) -> keras.Model mapping
# {"query": [B, Lq], "document": [B, Ld]} int32 ids to [B] scores.
ModelBuilder = Callable[..., keras.Model]


class RerankingTask:
    """Reranking over ``data`` (a ``RankingData``: synthetic or TSV).

    The default model is ``build_reranker`` with the hyperparameters given here. A
    ``model_builder`` (e.g. ``models.bert.bert_reranker_builder(...)``) replaces it; it is called
    with ``vocab_size``, ``query_length``, ``document_length`` and ``pad_id`` keywords, and the
    hyperparameters here are then unused.
    """

    def __init__(
        self,
        *,
        data: RankingData,
        hidden_dim: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        intermediate_dim: int = 128,
        dropout: float = 0.0,
        loss: str = "pairwise_hinge",
        margin: float = 1.0,
        metrics_cutoff: int = 10,
        model_builder: ModelBuilder | None = None,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}. Received: {loss!r}")
        if not isinstance(metrics_cutoff, int) or metrics_cutoff < 1:
            raise ValueError(f"metrics_cutoff must be a positive int. Received: {metrics_cutoff!r}")
        self.data = data
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.loss = loss
        self.margin = float(margin)
        self.metrics_cutoff = metrics_cutoff
        self.model_builder = model_builder

    # Data sources may regenerate or re-tokenize on every call: keep one copy per task.
    @functools.cached_property
    def _triples(self) -> TrainTriples:
        return self.data.train_triples()

    @functools.cached_property
    def _eval_pairs(self) -> EvalPairs:
        return self.data.eval_pairs()

    def build_model(self) -> keras.Model:
        """The scoring model (call inside ``strategy.scope()``)."""
        shapes = dict(
            vocab_size=self.data.vocab_size,
            query_length=int(self._triples.query.shape[1]),
            document_length=int(self._triples.positive.shape[1]),
            pad_id=self.data.pad_id,
        )
        if self.model_builder is not None:
            return self.model_builder(**shapes)
        return build_reranker(
            **shapes,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
        )

    def train_dataset(self, global_batch_size: int, seed: int) -> tf.data.Dataset:
        """Infinite ``{"query", "positive", "negative"}`` batches of exactly
        ``global_batch_size``; the same ``seed`` gives the same stream."""
        return triples_dataset(self._triples, global_batch_size=global_batch_size, seed=seed)

    def eval_dataset(self, global_batch_size: int) -> tf.data.Dataset:
        """Finite ``{"qid", "query", "document", "label"}`` batches in a fixed order."""
        return eval_pairs_dataset(self._eval_pairs, global_batch_size=global_batch_size)

    def score(self, model: keras.Model, query, document, training: bool = False):
        """``model``'s scores ``[B]`` for aligned query and document id batches."""
        return model({"query": query, "document": document}, training=training)

    def per_example_loss(self, model: keras.Model, features: Mapping, training: bool):
        """Ranking loss ``[B]``: both documents are scored in one model call over ``2B`` rows."""
        query = features["query"]
        both = self.score(
            model,
            ops.concatenate([query, query], axis=0),
            ops.concatenate([features["positive"], features["negative"]], axis=0),
            training=training,
        )
        positive, negative = ops.split(both, 2, axis=0)
        return ranking_loss(self.loss, positive, negative, margin=self.margin)

    def eval_outputs(self, model: keras.Model, features: Mapping) -> dict:
        """``{"score", "qid", "label"}`` per pair, for ``eval_metrics``."""
        return {
            "score": self.score(model, features["query"], features["document"]),
            "qid": features["qid"],
            "label": features["label"],
        }

    def eval_metrics(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """``mrr@10`` and ``ndcg@10`` (or ``@metrics_cutoff``) over the whole evaluation set."""
        return ranking_metrics(outputs, k=self.metrics_cutoff)
