"""A keras_hub BERT cross-encoder reranker (optional extra ``hub``: ``pip install keras-hub``).

The query and document ids are packed as ``[CLS] query [SEP] document [SEP]`` with the PAD
tokens moved to the end (so positions are contiguous as in BERT pretraining), segment 0 for
``[CLS] query [SEP]`` and 1 for ``document [SEP]``. The backbone's pooled ``[CLS]`` output goes
through dropout and a ``Dense(1)`` named ``head``.

The backbone is either built from a config (random init: ``vocab_size + 2`` ids, ``[CLS]`` =
``vocab_size`` and ``[SEP]`` = ``vocab_size + 1`` appended to the data's vocabulary) or loaded
from a local keras_hub preset directory (``config.json`` + ``model.weights.h5``, as written by
``Backbone.save_to_preset``). With a preset, the data must use the preset's vocabulary
(``TsvRankingData(vocab_path=...)``, whole-word lookups, no WordPiece); the ``[CLS]``/``[SEP]``
ids are read from ``assets/tokenizer/vocabulary.txt`` in the preset when present, else must be
given.

Variable paths are the backbone's own (keras_hub models add no prefix when nested):
``token_embedding/``, ``position_embedding/``, ``segment_embedding/``,
``embeddings_layer_norm/``, ``transformer_layer_<i>/...``, ``pooled_dense/``, plus ``head/``.
``models.layerwise.layerwise_decay_pattern_lrs`` writes patterns for exactly these.
"""

from __future__ import annotations

import functools
import os

import keras
from keras import layers, ops

from capreolus_opt.data.tokenizer import Vocabulary


def _keras_hub():
    try:
        import keras_hub
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "The BERT reranker needs keras-hub: pip install 'capreolus_opt[hub]'"
        ) from e
    return keras_hub


class BertPairPacker(layers.Layer):
    """``(query [B, Lq], document [B, Ld])`` -> BERT inputs of length ``Lq + Ld + 3``."""

    def __init__(self, *, cls_id: int, sep_id: int, pad_id: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id

    def call(self, query, document):
        one = ops.ones_like(query[:, :1])
        ids = ops.concatenate(
            [one * self.cls_id, query, one * self.sep_id, document, one * self.sep_id], axis=1
        )
        segments = ops.concatenate(
            [ops.zeros_like(query), 0 * one, 0 * one, ops.ones_like(document), one], axis=1
        )
        keep = ops.concatenate(
            [one > 0, query != self.pad_id, one > 0, document != self.pad_id, one > 0], axis=1
        )
        length = ids.shape[1]
        # Kept tokens first, each part in its original order: sort keys are unique, so any
        # sort is stable here.
        key = ops.where(keep, 0, length) + ops.arange(length)[None, :]
        order = ops.argsort(key, axis=-1)
        keep = ops.take_along_axis(keep, order, axis=1)
        ids = ops.where(keep, ops.take_along_axis(ids, order, axis=1), self.pad_id)
        segments = ops.where(keep, ops.take_along_axis(segments, order, axis=1), 0)
        return {"token_ids": ids, "segment_ids": segments, "padding_mask": keep}


def _special_ids_from_preset(preset: str) -> tuple[int | None, int | None]:
    path = os.path.join(preset, "assets", "tokenizer", "vocabulary.txt")
    if not os.path.exists(path):
        return None, None
    vocab = Vocabulary.from_file(path)
    return vocab.token_id("[CLS]"), vocab.token_id("[SEP]")


def build_bert_reranker(
    *,
    vocab_size: int,
    query_length: int,
    document_length: int,
    pad_id: int = 0,
    preset: str | None = None,
    num_layers: int = 2,
    num_heads: int = 2,
    hidden_dim: int = 64,
    intermediate_dim: int = 128,
    dropout: float = 0.1,
    cls_id: int | None = None,
    sep_id: int | None = None,
) -> keras.Model:
    """``{"query": [B, Lq], "document": [B, Ld]} -> [B]`` scores over a keras_hub BertBackbone.

    Without ``preset`` the backbone is randomly initialised from the size arguments; with
    ``preset`` (a local directory) its config and weights are loaded and the size arguments are
    unused. See the module docstring for the input packing and the special-token ids.
    """
    keras_hub = _keras_hub()
    sequence_length = query_length + document_length + 3
    if preset is None:
        cls_id = vocab_size if cls_id is None else cls_id
        sep_id = vocab_size + 1 if sep_id is None else sep_id
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=max(vocab_size, cls_id + 1, sep_id + 1),
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            max_sequence_length=sequence_length,
        )
    else:
        if not os.path.isdir(preset):
            raise ValueError(
                f"preset must be a local keras_hub preset directory. Received: {preset!r}"
            )
        found_cls, found_sep = _special_ids_from_preset(preset)
        cls_id = found_cls if cls_id is None else cls_id
        sep_id = found_sep if sep_id is None else sep_id
        if cls_id is None or sep_id is None:
            raise ValueError(
                f"preset {preset!r} has no assets/tokenizer/vocabulary.txt: pass cls_id and sep_id."
            )
        backbone = keras_hub.models.BertBackbone.from_preset(preset)
        if vocab_size > backbone.vocabulary_size:
            raise ValueError(
                f"The data's vocabulary ({vocab_size} ids) is larger than the preset's "
                f"({backbone.vocabulary_size}); load the data with the preset's vocabulary."
            )
        if sequence_length > backbone.max_sequence_length:
            raise ValueError(
                f"query_length + document_length + 3 = {sequence_length} exceeds the preset's "
                f"max_sequence_length={backbone.max_sequence_length}."
            )
    query = keras.Input((query_length,), dtype="int32", name="query")
    document = keras.Input((document_length,), dtype="int32", name="document")
    packed = BertPairPacker(cls_id=cls_id, sep_id=sep_id, pad_id=pad_id, name="packer")(
        query, document
    )
    pooled = backbone(packed)["pooled_output"]
    pooled = layers.Dropout(dropout, name="head_dropout")(pooled)
    # No bias: ranking losses compare scores within a query, so a shared offset gets no gradient.
    score = layers.Dense(1, use_bias=False, name="head")(pooled)
    score = layers.Reshape((), name="squeeze")(score)
    return keras.Model({"query": query, "document": document}, score, name="bert_reranker")


def bert_reranker_builder(
    *,
    preset: str | None = None,
    num_layers: int = 2,
    num_heads: int = 2,
    hidden_dim: int = 64,
    intermediate_dim: int = 128,
    dropout: float = 0.1,
    cls_id: int | None = None,
    sep_id: int | None = None,
):
    """A ``RerankingTask(model_builder=...)`` that builds ``build_bert_reranker`` with these
    arguments (the task supplies vocab_size, lengths and pad_id)."""
    return functools.partial(
        build_bert_reranker,
        preset=preset,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        cls_id=cls_id,
        sep_id=sep_id,
    )
