"""``RerankingTask``: the text-pair reranker behind the Task protocol (docs/ARCHITECTURE.md).

Training examples are (query, positive document, negative document) triples; the loss scores
both documents against the query and applies a pairwise hinge or softmax ranking loss
(``models/losses.py``). Evaluation scores labelled (qid, query, document) pairs and reports
MRR@10 and nDCG@10 per query, averaged (``metrics/candidates.py``).

Over ``TrecRerankingData`` (which has ``eval_index``) evaluation is TREC's instead
(``models/trec_evaluation.py``): trec_eval metrics of the dev split (``ndcg@10``, ``mrr@10``,
``map``, ``recall@100``, ``judged@10``), run files of dev and test after every evaluation, the
best model by ``selection_metric`` on dev kept for reranking, and the final result the
``dev/...`` and ``test/...`` metrics of that model (``training/selection.py``).

Example::

    from capreolus_opt.data.synthetic import SyntheticRankingData
    task = RerankingTask(data=SyntheticRankingData(seed=0), num_layers=2, loss="softmax")
    model = task.build_model()
    batch = next(iter(task.train_dataset(global_batch_size=32, seed=0)))
    loss = task.per_example_loss(model, batch, training=True)   # shape [32]
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

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
from capreolus_opt.metrics.candidates import ranking_metrics
from capreolus_opt.models.encoder import build_reranker
from capreolus_opt.models.losses import LOSSES, ranking_loss
from capreolus_opt.models.trec_evaluation import TrecEvaluator, recorded_metrics
from capreolus_opt.storage.workdir_layout import MANIFEST, MODEL_FILE, VOCAB_FILE

# model_builder(vocab_size=, query_length=, document_length=, pad_id=) -> keras.Model mapping
# {"query": [B, Lq], "document": [B, Ld]} int32 ids to [B] scores.
ModelBuilder = Callable[..., keras.Model]


class RerankingTask:
    """Reranking over ``data`` (a ``RankingData``: synthetic or TSV).

    The default model is ``build_reranker`` with the hyperparameters given here. A
    ``model_builder`` (e.g. ``models.bert.bert_reranker_builder(...)``) replaces it; it is called
    with ``vocab_size``, ``query_length``, ``document_length`` and ``pad_id`` keywords, and the
    hyperparameters here are then unused. ``eval_batch_size`` (default: the training batch
    size) batches evaluation; ``selection_metric`` and ``interpolate`` apply to TREC data only.
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
        eval_batch_size: int | None = None,
        selection_metric: str = "ndcg@10",
        interpolate: bool = False,
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
        if eval_batch_size is not None and (
            isinstance(eval_batch_size, bool) or not isinstance(eval_batch_size, int)
            or eval_batch_size < 1
        ):  # fmt: skip
            raise ValueError(
                f"eval_batch_size must be None or a positive int. Received: {eval_batch_size!r}"
            )
        self.eval_batch_size = eval_batch_size
        self._trec = (
            TrecEvaluator(data, selection_metric=selection_metric, interpolate=interpolate)
            if hasattr(data, "eval_index")
            else None
        )

    # Data sources may regenerate or re-tokenize on every call: keep one copy per task.
    @functools.cached_property
    def _triples(self) -> TrainTriples:
        return self.data.train_triples()

    @functools.cached_property
    def _eval_pairs(self) -> EvalPairs:
        return self.data.eval_pairs()

    def model_spec(self) -> dict[str, Any]:
        """The arguments of the model builder: what ``export`` records to rebuild the model."""
        spec: dict[str, Any] = dict(
            vocab_size=self.data.vocab_size,
            query_length=int(self._triples.query.shape[1]),
            document_length=int(self._triples.positive.shape[1]),
            pad_id=self.data.pad_id,
        )
        if self.model_builder is None:
            spec.update(
                hidden_dim=self.hidden_dim,
                num_layers=self.num_layers,
                num_heads=self.num_heads,
                intermediate_dim=self.intermediate_dim,
                dropout=self.dropout,
            )
        return spec

    def build_model(self) -> keras.Model:
        """The scoring model (call inside ``strategy.scope()``)."""
        if self.model_builder is not None:
            return self.model_builder(**self.model_spec())
        return build_reranker(**self.model_spec())

    def train_dataset(self, global_batch_size: int, seed: int) -> tf.data.Dataset:
        """Infinite ``{"query", "positive", "negative"}`` batches of exactly
        ``global_batch_size``; the same ``seed`` gives the same stream."""
        return triples_dataset(self._triples, global_batch_size=global_batch_size, seed=seed)

    def eval_dataset(self, global_batch_size: int) -> tf.data.Dataset:
        """Finite ``{"qid", "query", "document", "label", "pair"}`` batches in a fixed order,
        of ``eval_batch_size`` when set (else ``global_batch_size``); over TREC data the dev
        candidates only (the test ones are ``test_dataset``'s)."""
        size = self.eval_batch_size or global_batch_size
        rows = self._trec.rows("dev") if self._trec is not None else None
        return eval_pairs_dataset(self._eval_pairs, global_batch_size=size, rows=rows)

    @property
    def pretrained(self) -> bool:
        """Whether the model starts from pretrained weights (a ``model_builder`` whose
        ``pretrained`` attribute is true, as ``bert_reranker_builder`` with a preset): the
        loop then evaluates before the first step by default (``train.eval_at_start``)."""
        return bool(getattr(self.model_builder, "pretrained", False))

    def score(self, model: keras.Model, query, document, training: bool = False):
        """``model``'s scores ``[B]`` for aligned query and document id batches."""
        return model({"query": query, "document": document}, training=training)

    def per_example_loss(self, model: keras.Model, features: Mapping, training: bool):
        """Ranking loss ``[B]``: both documents are scored in one model call over ``2B`` rows;
        a ``model_builder`` with its own ``per_example_loss`` (the dual encoder's in-batch
        softmax) computes it instead."""
        own = getattr(self.model_builder, "per_example_loss", None)
        if own is not None:
            return own(model, features, training)
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
        outputs = {
            "score": self.score(model, features["query"], features["document"]),
            "qid": features["qid"],
            "label": features["label"],
        }
        if "pair" in features:
            outputs["pair"] = features["pair"]
        return outputs

    def eval_metrics(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """``mrr@10`` and ``ndcg@10`` (or ``@metrics_cutoff``) over the whole evaluation set;
        over TREC data, the dev split's trec_eval metrics (module docstring)."""
        if self._trec is not None:
            return self._trec.metrics(outputs)
        return ranking_metrics(outputs, k=self.metrics_cutoff)

    def eval_metric_names(self) -> list[str]:
        """The keys :meth:`eval_metrics` returns (what searches may optimise as ``eval/NAME``),
        known without evaluating anything."""
        if self._trec is not None:
            from capreolus_opt.metrics.trec import MEASURES

            names = list(MEASURES)
            return [*names, "interpolation_weight"] if self._trec.interpolate else names
        return [f"mrr@{self.metrics_cutoff}", f"ndcg@{self.metrics_cutoff}"]

    # --- TREC data: the optional protocol of training/selection.py ----------------------
    @property
    def selection_metric(self) -> str | None:
        return self._trec.selection_metric if self._trec is not None else None

    def record_evaluation(self, step: int, directory: str) -> list[str]:
        return self._trec.record(step, directory) if self._trec is not None else []

    def final_metrics(self, step: int, directory: str) -> dict[str, float]:
        return recorded_metrics(step, directory)

    def test_dataset(self, global_batch_size: int) -> tf.data.Dataset | None:
        """The test candidates (TREC data), scored once with the dev-selected model; else None."""
        if self._trec is None:
            return None
        size = self.eval_batch_size or global_batch_size
        rows = self._trec.rows("test")
        return eval_pairs_dataset(self._eval_pairs, global_batch_size=size, rows=rows)

    def record_test_evaluation(
        self, step: int, outputs: Mapping[str, np.ndarray], directory: str, best: Mapping
    ) -> list[str]:
        """Evaluates the test ``outputs`` of the model of ``step`` (interpolated with the
        weight in ``best``, its ``best.json``) and adds them to that step's recorded files."""
        self._trec.test_metrics(outputs, best.get("interpolation_weight"))
        return self._trec.record_test(step, directory)

    def export(self, directory: str, model: keras.Model | None = None) -> None:
        """Writes what ``capreolus-opt rerank`` needs into ``directory`` (the layout of
        ``storage/workdir_layout.py``): ``reranker.json`` (how to rebuild the model, its maximum
        lengths) and the encoder's ``vocab.txt``; a ``model_builder``'s model (e.g. BERT, whose
        input layer carries its WordPiece vocabulary) is saved whole as ``model.keras``, since
        its gin configuration is not there to rebuild it, and that file is then its only copy
        of the weights (the caller saves ``model.weights.npz`` only for a model not saved
        whole). ``directory`` is a fresh folder that the caller swaps in whole
        (``training/selection.py``), so no file here needs its own write-aside."""
        spec: dict[str, Any] = {
            "format": 1,
            "builder": "build_reranker",
            "model": self.model_spec(),
            "max_query_length": int(self._triples.query.shape[1]),
            "max_doc_length": int(self._triples.positive.shape[1]),
        }
        if self.model_builder is not None:
            spec["builder"] = "model_builder"  # not rebuildable, unless saved whole below
            if model is not None:
                model.save(os.path.join(directory, MODEL_FILE))
                spec["builder"], spec["model_file"] = "keras", MODEL_FILE
        encoder = getattr(self.data, "encoder", None)
        if encoder is not None and hasattr(encoder, "save"):
            encoder.save(os.path.join(directory, VOCAB_FILE))
        with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=1)

    def run_info(self) -> dict[str, Any]:
        """Recorded in the run's info (``task``): truncation statistics and split sizes."""
        if not hasattr(self.data, "truncation_stats"):
            return {}
        return {
            "truncation": self.data.truncation_stats(),
            "queries": {split: len(q) for split, q in self.data.folds.items()},
            "eval_pairs": len(self._eval_pairs),
            "train_triples": len(self._triples),
        }

    def validate_inputs(self) -> None:
        """Reads and checks the data now (``DataError`` naming FILE:LINE), before a run starts."""
        validate = getattr(self.data, "validate_inputs", None)
        if validate is not None:
            validate()
