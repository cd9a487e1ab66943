"""A keras_hub BERT dual-encoder (bi-encoder) reranker (extra ``hub``; README "BERT rerankers").

Query and document are encoded separately by the same backbone, each as
``[CLS] text [SEP]`` (PAD moved to the end, segment 0), pooled over the non-padding tokens, passed
through an optional projection (``head/``) and, for cosine scoring, L2-normalised:

    e(x)       = normalize(head(pool(BERT([CLS] x [SEP]))))
    score(q,d) = e(q) . e(d)          (cosine when normalised; a dot product otherwise)

Pooling (``pooling``): ``"mean"`` averages the last hidden states over the tokens of the padding
mask (``[CLS]`` and ``[SEP]`` included, as sentence-transformers does), ``"cls"`` takes ``[CLS]``'s,
``"max"`` the element-wise maximum over the mask. ``"auto"`` reads the checkpoint's own rule from
``<preset>/1_Pooling/config.json`` (sentence-transformers folders: ``pooling_mode_mean_tokens`` /
``pooling_mode_cls_token`` / ``pooling_mode_max_tokens``) and falls back to ``"mean"``.

Projection (``projection``): ``"identity"`` (default) is a bias-free square ``Dense`` named ``head``
initialised to the identity, so step 0 scores exactly as the checkpoint does zero-shot while the
head still gets its own (larger) learning rate; ``"none"`` has no head. Pooling and normalisation
compute in float32 under a mixed policy.

Training (``in_batch_softmax_loss``): each query's positive competes with its own first-stage hard
negative and every other document of the (replica's) batch, by softmax cross-entropy over
``scale * score``:

    loss_i = logsumexp_j(scale * s_ij) - scale * s_ii,    j over [positives; hard negatives]

A column that repeats query i's positive (the same document tokens) or holds a positive of a
copy of query i (same query tokens) is masked out: it is not a negative of query i.
With ``MirroredStrategy`` the in-batch negatives are those of each replica's part of the batch.

Variable paths are the backbone's (``token_embedding/``, ``transformer_layer_<i>/``, ...) plus
``head/``; BERT's ``pooled_dense/`` is not used by pooling and is frozen (not trainable). The input
layer (``packer``) carries the WordPiece vocabulary like the cross-encoder's, so a saved
``model.keras`` reloads with its tokenizer for ``capreolus-opt rerank``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

import keras
from keras import layers, ops

# The cross-encoder's loaders and tokenizer carrier: one way to read a preset for both families.
from capreolus_opt.models.bert import (
    _CarriesTokenizer,
    _check_preset,
    _checkpoint_backbone,
    _random_backbone,
)

POOLINGS = ("mean", "cls", "max")
SIMILARITIES = ("cosine", "dot")
PROJECTIONS = ("identity", "none")
_POOLING_FILE = os.path.join("1_Pooling", "config.json")
_ST_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
_NEG = -1e9  # a masked logit: exp() underflows to 0 in float32


@keras.saving.register_keras_serializable(package="capreolus_opt")
class BertTextPacker(_CarriesTokenizer):
    """``ids [B, L]`` (no specials, PAD anywhere) -> ``[CLS] ids [SEP]`` BERT inputs ``[B, L+2]``
    with the PAD tokens moved to the end, segment 0."""

    def call(self, ids):
        one = ops.ones_like(ids[:, :1])
        seq = ops.concatenate([one * self.cls_id, ids, one * self.sep_id], axis=1)
        keep = ops.concatenate([one > 0, ids != self.pad_id, one > 0], axis=1)
        length = seq.shape[1]
        # Kept tokens first in their order (unique sort keys: any sort is stable here).
        key = ops.where(keep, 0, length) + ops.arange(length)[None, :]
        order = ops.argsort(key, axis=-1)
        keep = ops.take_along_axis(keep, order, axis=1)
        seq = ops.where(keep, ops.take_along_axis(seq, order, axis=1), self.pad_id)
        return {"token_ids": seq, "segment_ids": ops.zeros_like(seq), "padding_mask": keep}


@keras.saving.register_keras_serializable(package="capreolus_opt")
class MaskedPooling(layers.Layer):
    """``(hidden [B, L, H], mask [B, L])`` -> ``[B, H]`` by ``mode`` (module docstring)."""

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}. Received: {mode!r}")
        self.mode = mode

    def call(self, hidden, mask):
        hidden = ops.cast(hidden, "float32")
        if self.mode == "cls":
            return hidden[:, 0, :]
        keep = ops.cast(mask, "float32")[:, :, None]
        if self.mode == "max":
            return ops.max(ops.where(keep > 0, hidden, _NEG), axis=1)
        total = ops.sum(hidden * keep, axis=1)
        return total / ops.maximum(ops.sum(keep, axis=1), 1e-9)

    def get_config(self) -> dict:
        return super().get_config() | {"mode": self.mode}


@keras.saving.register_keras_serializable(package="capreolus_opt")
class L2Normalize(layers.Layer):
    """``x / max(||x||, 1e-12)`` along the last axis, in float32 (as
    ``torch.nn.functional.normalize``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, x):
        x = ops.cast(x, "float32")
        norm = ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))
        return x / ops.maximum(norm, 1e-12)


def pooling_from_folder(preset: str) -> str | None:
    """The pooling a sentence-transformers folder names in ``1_Pooling/config.json``; None when
    ``preset`` is not a folder or has no such file.

    Raises:
        ValueError: the file names a mode this model does not implement, or not exactly one.
    """
    path = os.path.join(preset, _POOLING_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read as JSON: {err}") from None
    if not isinstance(config, Mapping):
        raise ValueError(f"{path} must hold a JSON object of pooling_mode_* flags")
    on = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v is True)
    unsupported = [k for k in on if k not in _ST_MODES]
    if unsupported or len(on) != 1:
        raise ValueError(
            f"{path} turns on {on or 'no pooling mode'}; expected exactly one of "
            f"{sorted(_ST_MODES)}"
        )
    return _ST_MODES[on[0]]


def resolve_pooling(pooling: str, preset: str | None) -> str:
    """``pooling``, or for ``"auto"`` the preset folder's own (else ``"mean"``)."""
    if pooling != "auto" and pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'auto' or one of {POOLINGS}. Received: {pooling!r}")
    found = pooling_from_folder(preset) if isinstance(preset, str) else None
    if pooling == "auto":
        return found or "mean"
    if found is not None and found != pooling:
        warnings.warn(
            f"pooling={pooling!r} overrides the checkpoint's own {found!r} "
            f"({os.path.join(preset, _POOLING_FILE)})",
            UserWarning,
            stacklevel=3,
        )
    return pooling


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}. Received: {value!r}")


def build_dual_encoder(
    *,
    vocab_size: int,
    query_length: int,
    document_length: int,
    pad_id: int = 0,
    preset: str | None = None,
    pooling: str = "auto",
    similarity: str = "cosine",
    normalize: bool = False,
    projection: str = "identity",
    num_layers: int = 2,
    num_heads: int = 2,
    hidden_dim: int = 64,
    intermediate_dim: int = 128,
    dropout: float = 0.1,
    cls_id: int | None = None,
    sep_id: int | None = None,
) -> keras.Model:
    """Scores ``[B]`` of ``{"query": [B, Lq], "document": [B, Ld]}`` WordPiece ids (no specials).

    With ``preset`` the backbone and vocabulary are the preset's (``vocab_size``/``pad_id`` must
    be its tokenizer's); without one the size arguments build a random backbone on the data's
    ids (``[CLS]`` = ``vocab_size``, ``[SEP]`` = ``vocab_size + 1``). ``similarity="cosine"``
    normalises the embeddings; ``"dot"`` normalises them only with ``normalize=True``. The size
    arguments and ``dropout`` shape a random backbone only (a preset brings its own).
    """
    _check_choice("similarity", similarity, SIMILARITIES)
    _check_choice("projection", projection, PROJECTIONS)
    for name, value in (("query_length", query_length), ("document_length", document_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int. Received: {value!r}")
    mode = resolve_pooling(pooling, preset)
    length = max(query_length, document_length) + 2
    tokenizer = None
    if preset is None:
        cls_id = vocab_size if cls_id is None else cls_id
        sep_id = vocab_size + 1 if sep_id is None else sep_id
        backbone = _random_backbone(
            vocab_size, cls_id, sep_id, length, num_layers=num_layers, num_heads=num_heads,
            hidden_dim=hidden_dim, intermediate_dim=intermediate_dim, dropout=dropout,
        )  # fmt: skip
    else:
        backbone, tokenizer, cls_id, sep_id = _checkpoint_backbone(
            preset, vocab_size, pad_id, length, cls_id, sep_id
        )
    # Pooling reads the hidden states, never BERT's pooler: keep it out of training.
    backbone.get_layer("pooled_dense").trainable = False

    packer = BertTextPacker(
        cls_id=cls_id, sep_id=sep_id, pad_id=pad_id, name="packer",
        tokenizer=None if tokenizer is None else tokenizer.get_config(),
    )  # fmt: skip
    if tokenizer is not None:
        packer.vocabulary_tokens = list(tokenizer.vocabulary.tokens)
    embedder = _embedder(backbone, mode, projection, similarity == "cosine" or normalize)
    query = keras.Input((query_length,), dtype="int32", name="query")
    document = keras.Input((document_length,), dtype="int32", name="document")
    q = embedder(packer(query))
    d = embedder(packer(document))
    # float32 to the end: float16 scores would tie candidates (about 3 significant digits).
    score = layers.Dot(axes=-1, dtype="float32", name="similarity")([q, d])
    score = layers.Reshape((), dtype="float32", name="squeeze")(score)
    return keras.Model({"query": query, "document": document}, score, name="dual_encoder")


def _embedder(backbone, mode: str, projection: str, unit: bool) -> keras.Model:
    """``{"token_ids", "segment_ids", "padding_mask"} [B, L]`` -> embeddings ``[B, D]``."""
    names = ("token_ids", "segment_ids", "padding_mask")
    inputs = {n: keras.Input((None,), dtype="bool" if n == "padding_mask" else "int32", name=n)
              for n in names}  # fmt: skip
    hidden = backbone(inputs)["sequence_output"]
    pooled = MaskedPooling(mode, name="pooling")(hidden, inputs["padding_mask"])
    if projection == "identity":
        width = int(pooled.shape[-1])
        pooled = layers.Dense(width, use_bias=False, kernel_initializer="identity", name="head")(
            pooled
        )
    if unit:
        pooled = L2Normalize(name="normalize")(pooled)
    else:
        pooled = layers.Activation("linear", dtype="float32", name="embedding")(pooled)
    return keras.Model(inputs, pooled, name="embedder")


# --- training: in-batch negatives plus the first-stage hard negatives ------------------------
def in_batch_softmax_loss(
    query_embeddings,
    positive_embeddings,
    negative_embeddings,
    *,
    scale: float,
    same_query=None,
    same_positive=None,
    in_batch: bool = True,
):
    """Per-query loss ``[B]`` (module docstring): softmax cross-entropy of the positive among
    ``[positives; negatives]`` of the batch (``in_batch``) or among its own positive and
    negative only. ``same_query [B, B]`` (bool: query j is query i) and ``same_positive
    [B, 2B]`` (column repeats query i's positive) mask false negatives."""
    q = ops.cast(query_embeddings, "float32")
    p = ops.cast(positive_embeddings, "float32")
    n = ops.cast(negative_embeddings, "float32")
    if not in_batch:
        pos = ops.sum(q * p, axis=-1) * scale
        neg = ops.sum(q * n, axis=-1) * scale
        logits = ops.stack([pos, neg], axis=1)
        return ops.logsumexp(logits, axis=1) - pos
    docs = ops.concatenate([p, n], axis=0)  # [2B, D]
    logits = ops.matmul(q, ops.transpose(docs)) * scale  # [B, 2B]
    batch = ops.shape(q)[0]
    diagonal = ops.concatenate(
        [ops.eye(batch, dtype="bool"), ops.zeros((batch, batch), dtype="bool")], axis=1
    )
    masked = ops.zeros_like(diagonal)
    if same_query is not None:
        columns = ops.concatenate([same_query, ops.zeros_like(same_query)], axis=1)
        masked = ops.logical_or(masked, columns)
    if same_positive is not None:
        masked = ops.logical_or(masked, same_positive)
    masked = ops.logical_and(masked, ops.logical_not(diagonal))
    logits = ops.where(masked, _NEG, logits)
    positive = ops.sum(ops.where(diagonal, logits, 0.0), axis=1)
    return ops.logsumexp(logits, axis=1) - positive


def _rows_equal(a, b):
    """``[Na, Nb]`` bool: row i of ``a`` equals row j of ``b`` (int ids)."""
    return ops.all(ops.equal(a[:, None, :], b[None, :, :]), axis=-1)


class DualEncoderBuilder:
    """A ``RerankingTask(model_builder=...)`` for ``build_dual_encoder`` that also brings its
    training loss (``per_example_loss``; the task's ``loss`` is then unused)."""

    def __init__(self, *, scale: float, in_batch_negatives: bool, **model_kwargs: Any) -> None:
        self.scale = float(scale)
        self.in_batch_negatives = bool(in_batch_negatives)
        self.model_kwargs = model_kwargs
        # RerankingTask.pretrained: with a checkpoint, step 0 is its zero-shot score.
        self.pretrained = model_kwargs.get("preset") is not None

    def __call__(self, **spec: Any) -> keras.Model:
        return build_dual_encoder(**spec, **self.model_kwargs)

    def per_example_loss(self, model: keras.Model, features: Mapping, training: bool):
        packer, embedder = model.get_layer("packer"), model.get_layer("embedder")
        query, pos, neg = features["query"], features["positive"], features["negative"]
        q = embedder(packer(query), training=training)
        docs = embedder(packer(ops.concatenate([pos, neg], axis=0)), training=training)
        p, n = ops.split(docs, 2, axis=0)
        return in_batch_softmax_loss(
            q, p, n, scale=self.scale, in_batch=self.in_batch_negatives,
            same_query=_rows_equal(query, query),
            same_positive=_rows_equal(pos, ops.concatenate([pos, neg], axis=0)),
        )  # fmt: skip


def dual_encoder_builder(
    *,
    preset: str | None = None,
    pooling: str = "auto",
    similarity: str = "cosine",
    normalize: bool = False,
    projection: str = "identity",
    scale: float | None = None,
    in_batch_negatives: bool = True,
    num_layers: int = 2,
    num_heads: int = 2,
    hidden_dim: int = 64,
    intermediate_dim: int = 128,
    dropout: float = 0.1,
    cls_id: int | None = None,
    sep_id: int | None = None,
) -> DualEncoderBuilder:
    """A ``RerankingTask.model_builder`` for the dual encoder (module docstring).

    ``scale`` multiplies the scores inside the training loss (an inverse temperature); default
    20 for cosine (sentence-transformers' MultipleNegativesRankingLoss), 1 for a dot product.
    """
    _check_preset(preset, optional=True)
    _check_choice("similarity", similarity, SIMILARITIES)
    _check_choice("projection", projection, PROJECTIONS)
    if pooling != "auto":
        _check_choice("pooling", pooling, POOLINGS)
    if scale is None:
        scale = 20.0 if similarity == "cosine" else 1.0
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
        raise ValueError(f"scale must be a positive number. Received: {scale!r}")
    return DualEncoderBuilder(
        scale=scale, in_batch_negatives=in_batch_negatives, preset=preset, pooling=pooling,
        similarity=similarity, normalize=normalize, projection=projection,
        num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim, dropout=dropout, cls_id=cls_id, sep_id=sep_id,
    )  # fmt: skip
