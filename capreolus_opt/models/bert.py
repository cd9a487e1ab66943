"""A keras_hub BERT cross-encoder reranker (extra ``hub``; README "BERT rerankers").

Two input layouts, one set of weights:

- ``{"query": [B, Lq], "document": [B, Ld]}`` WordPiece ids without special tokens (what
  ``RerankingTask`` feeds), packed in the graph by ``BertPairPacker`` as
  ``[CLS] query [SEP] document [SEP]`` with the PAD tokens moved to the end (positions contiguous
  as in pretraining), segment 0 for ``[CLS] query [SEP]`` and 1 for ``document [SEP]``;
- ``pair_inputs=True``: ``{"token_ids", "segment_ids", "padding_mask"}`` ``[B, sequence_length]``
  already packed on the host by ``data.wordpiece.WordPieceTokenizer.encode_pairs``.

The backbone's pooled ``[CLS]`` output goes through dropout and a ``Dense(1)`` named ``head``.
It is either built from a config (random init: ``vocab_size + 2`` ids, ``[CLS]`` = ``vocab_size``
and ``[SEP]`` = ``vocab_size + 1`` appended to the data's vocabulary) or loaded from a pretrained
checkpoint by ``models.checkpoint.load_bert_checkpoint``: a Hugging Face folder (``config.json``
with ``model_type`` ``"bert"``, ``model.safetensors``, ``vocab.txt`` / ``tokenizer.json``,
``tokenizer_config.json``), a keras_hub preset folder (``config.json``, ``model.weights.h5``,
``tokenizer.json``, ``assets/tokenizer/vocabulary.txt``) or, with internet, a keras_hub hub name
such as ``"bert_base_en_uncased"``. With a checkpoint the data must be tokenised by its own
WordPiece (``bert_wordpiece_tokenizer(preset)``); the input layer carries that vocabulary and its
settings, so a model saved as ``.keras`` brings its tokenizer back (``tokenizer_from_model``).

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
from capreolus_opt.data.wordpiece import WordPieceTokenizer
from capreolus_opt.optional import require

_VOCAB_FILE = "vocabulary.txt"


def keras_hub_module():
    """``keras_hub``, or a :class:`MissingExtraError` that says how to install it beside
    tensorflow-cpu (README: BERT rerankers)."""
    return require("keras_hub", "hub")


class _CarriesTokenizer(layers.Layer):
    """Holds the WordPiece vocabulary (a ``.keras`` asset) and settings of the model's inputs."""

    def __init__(
        self, *, cls_id: int, sep_id: int, pad_id: int, tokenizer: dict | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.cls_id, self.sep_id, self.pad_id = int(cls_id), int(sep_id), int(pad_id)
        self.tokenizer_settings = tokenizer
        self.vocabulary_tokens: list[str] | None = None

    def get_config(self) -> dict:
        return super().get_config() | {
            "cls_id": self.cls_id,
            "sep_id": self.sep_id,
            "pad_id": self.pad_id,
            "tokenizer": self.tokenizer_settings,
        }

    def save_assets(self, dir_path: str) -> None:
        if self.vocabulary_tokens is not None:
            with open(os.path.join(dir_path, _VOCAB_FILE), "w", encoding="utf-8") as f:
                f.writelines(t + "\n" for t in self.vocabulary_tokens)

    def load_assets(self, dir_path: str) -> None:
        path = os.path.join(dir_path, _VOCAB_FILE)
        if os.path.exists(path):
            self.vocabulary_tokens = Vocabulary.from_file(path).tokens


@keras.saving.register_keras_serializable(package="capreolus_opt")
class BertPairPacker(_CarriesTokenizer):
    """``(query [B, Lq], document [B, Ld])`` -> BERT inputs of length ``Lq + Ld + 3``."""

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


@keras.saving.register_keras_serializable(package="capreolus_opt")
class BertPackedInputs(_CarriesTokenizer):
    """Host-packed ``encode_pairs`` features -> the backbone's inputs (mask as bool)."""

    def call(self, token_ids, segment_ids, padding_mask):
        return {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": ops.cast(padding_mask, "bool"),
        }


def tokenizer_from_model(model: keras.Model) -> WordPieceTokenizer | None:
    """The WordPiece tokenizer a (reloaded) BERT reranker was trained with; ``None`` for a
    randomly initialised one that read the data's own ids."""
    for layer in model.layers:
        if isinstance(layer, _CarriesTokenizer) and layer.vocabulary_tokens is not None:
            settings = dict(layer.tokenizer_settings or {})
            return WordPieceTokenizer(
                Vocabulary(tokens=layer.vocabulary_tokens),
                lowercase=settings.get("lowercase", False),
                strip_accents=settings.get("strip_accents", False),
                split_on_cjk=settings.get("split_on_cjk", True),
            )
    return None


def load_bert_reranker(path: str) -> keras.Model:
    """``keras.saving.load_model`` for a saved BERT reranker (imports keras_hub and
    ``models.bert_encoder`` first so their backbones are registered); weights, config and
    vocabulary come back."""
    keras_hub_module()
    import capreolus_opt.models.bert_encoder  # noqa: F401

    return keras.saving.load_model(path, compile=False)


def _random_backbone(vocab_size, cls_id, sep_id, sequence_length, **sizes):
    return keras_hub_module().models.BertBackbone(
        vocabulary_size=max(vocab_size, cls_id + 1, sep_id + 1),
        max_sequence_length=sequence_length,
        **sizes,
    )


def _checkpoint_backbone(preset, vocab_size, pad_id, length, cls_id, sep_id):
    """``(backbone, tokenizer, cls_id, sep_id)`` of a checkpoint, checked against the data's
    vocabulary and the packed length (both reranker families read checkpoints this way)."""
    from capreolus_opt.models.checkpoint import load_bert_checkpoint

    loaded = load_bert_checkpoint(preset)
    tokenizer = loaded.tokenizer
    if (vocab_size, pad_id) != (len(tokenizer), tokenizer.pad_id):
        raise ValueError(
            f"The data's vocabulary ({vocab_size} ids, PAD {pad_id}) is not the preset's "
            f"({len(tokenizer)} ids, PAD {tokenizer.pad_id}): tokenise the data with "
            "bert_wordpiece_tokenizer(preset)."
        )
    cls_id = tokenizer.cls_id if cls_id is None else cls_id
    sep_id = tokenizer.sep_id if sep_id is None else sep_id
    backbone = _check_backbone(loaded.backbone, preset, length, len(tokenizer))
    return backbone, tokenizer, cls_id, sep_id


def _check_backbone(backbone, preset: str, sequence_length: int, vocab_size: int):
    if sequence_length > backbone.max_sequence_length:
        raise ValueError(
            f"The packed length {sequence_length} exceeds the preset's "
            f"max_sequence_length={backbone.max_sequence_length}."
        )
    # Out-of-range ids fail on CPU but read zeros on GPU: refuse a vocabulary the backbone lacks.
    if vocab_size > backbone.vocabulary_size:
        raise ValueError(
            f"preset {preset!r}: its vocabulary.txt has {vocab_size} tokens but the backbone "
            f"embeds only {backbone.vocabulary_size}."
        )
    if backbone.num_segments < 2:
        raise ValueError(
            f"preset {preset!r} has {backbone.num_segments} segment type(s); a cross-encoder "
            "marks query and document with segments 0 and 1."
        )
    return backbone


def _inputs(pair_inputs, length, query_length, document_length, carrier):
    if pair_inputs:
        names = ("token_ids", "segment_ids", "padding_mask")
        inputs = {n: keras.Input((length,), dtype="int32", name=n) for n in names}
        return inputs, BertPackedInputs(**carrier, name="packer")
    inputs = {
        "query": keras.Input((query_length,), dtype="int32", name="query"),
        "document": keras.Input((document_length,), dtype="int32", name="document"),
    }
    return inputs, BertPairPacker(**carrier, name="packer")


def build_bert_reranker(
    *,
    vocab_size: int,
    query_length: int = 0,
    document_length: int = 0,
    pad_id: int = 0,
    preset: str | None = None,
    pair_inputs: bool = False,
    sequence_length: int | None = None,
    num_layers: int = 2,
    num_heads: int = 2,
    hidden_dim: int = 64,
    intermediate_dim: int = 128,
    dropout: float = 0.1,
    cls_id: int | None = None,
    sep_id: int | None = None,
) -> keras.Model:
    """Scores ``[B]`` over a keras_hub BertBackbone (layouts and presets: module docstring).

    ``pair_inputs=False`` packs to ``query_length + document_length + 3``; ``pair_inputs=True``
    takes ``sequence_length``-wide packed pairs. Without ``preset`` the size arguments build a
    random backbone; with one they are unused and its vocabulary gives the special ids.
    """
    if pair_inputs:
        if not isinstance(sequence_length, int) or sequence_length < 3:
            raise ValueError(
                f"pair_inputs needs sequence_length >= 3. Received: {sequence_length!r}"
            )
        length = sequence_length
    else:
        length = query_length + document_length + 3
    tokenizer = None
    if preset is None:
        cls_id = vocab_size if cls_id is None else cls_id
        sep_id = vocab_size + 1 if sep_id is None else sep_id
        backbone = _random_backbone(
            vocab_size,
            cls_id,
            sep_id,
            length,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
        )
    else:
        backbone, tokenizer, cls_id, sep_id = _checkpoint_backbone(
            preset, vocab_size, pad_id, length, cls_id, sep_id
        )
    carrier = dict(
        cls_id=cls_id,
        sep_id=sep_id,
        pad_id=pad_id,
        tokenizer=None if tokenizer is None else tokenizer.get_config(),
    )
    inputs, packer = _inputs(pair_inputs, length, query_length, document_length, carrier)
    if tokenizer is not None:
        packer.vocabulary_tokens = list(tokenizer.vocabulary.tokens)
    packed = packer(*inputs.values())
    pooled = backbone(packed)["pooled_output"]
    pooled = layers.Dropout(dropout, name="head_dropout")(pooled)
    # No bias: ranking losses compare scores within a query, so a shared offset gets no gradient.
    # float32 to the end: under a mixed policy float16 scores (about 3 significant digits) would
    # tie candidates.
    score = layers.Dense(1, use_bias=False, dtype="float32", name="head")(pooled)
    score = layers.Reshape((), dtype="float32", name="squeeze")(score)
    return keras.Model(inputs, score, name="bert_reranker")


def _check_preset(preset: object, *, optional: bool) -> None:
    if preset is None and optional:
        return
    if not isinstance(preset, str) or not preset:
        # A gin macro left at %gin.REQUIRED arrives here as gin's sentinel object.
        raise ValueError(
            "preset must be a Hugging Face checkpoint folder, a keras_hub preset folder or a hub "
            'name (a non-empty str); in gin set BERT_PRESET = "/path/to/checkpoint". '
            f"Received: {type(preset).__name__} {preset!r}"
        )
    from capreolus_opt.models.checkpoint import check_bert_checkpoint

    # An unsupported or incomplete Hugging Face folder is refused now, before a run starts.
    check_bert_checkpoint(preset)


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
    arguments (the task supplies vocab_size, lengths and pad_id). Its ``pretrained`` attribute
    says whether the encoder starts from a preset's weights (``RerankingTask.pretrained``)."""
    _check_preset(preset, optional=True)
    builder = functools.partial(
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
    builder.pretrained = preset is not None
    return builder


def bert_wordpiece_tokenizer(*, preset: str) -> WordPieceTokenizer:
    """The checkpoint's own WordPiece tokenizer, for the data source (``TsvRankingData.tokenizer``);
    ``preset`` is a Hugging Face folder, a keras_hub preset folder or a hub name."""
    _check_preset(preset, optional=False)
    return WordPieceTokenizer.from_preset(preset)
