"""One loader for a pretrained BERT-family encoder: a Hugging Face folder or a keras_hub preset.

``load_bert_checkpoint(path)`` returns the backbone, the host-side WordPiece tokenizer that gives
the checkpoint's own ids, and a ``CheckpointInfo`` (format, model type, activation, sizes, and
for sentence-transformers folders the pooling, normalisation and input limit). Rerankers (the
cross-encoder in ``models.bert``, dual encoders) build on it.

A Hugging Face folder (``data.checkpoint_files``) is checked first, then its weights are converted
by keras_hub's own converter (``BertBackbone.from_preset(folder)`` reads ``model.safetensors``)
and copied into a ``models.bert_encoder.BertEncoder`` that applies the activation ``config.json``
names (keras_hub's BertBackbone always uses the tanh GELU). The conversion runs each time a model
is built; nothing is cached, since a trained model is saved whole (``.keras``) and reloads without
the folder. A keras_hub preset (folder or hub name) loads as keras_hub saved it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from capreolus_opt.data.checkpoint_files import (
    SUPPORTED_MODEL_TYPES,
    CheckpointError,
    is_huggingface_folder,
    read_checkpoint_files,
)
from capreolus_opt.data.wordpiece import WordPieceTokenizer

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "CheckpointError",
    "CheckpointInfo",
    "LoadedCheckpoint",
    "check_bert_checkpoint",
    "load_bert_checkpoint",
]


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What a loaded checkpoint is.

    ``format`` is ``"huggingface"`` or ``"keras_hub"``; ``hidden_act`` the feed-forward
    activation as transformers names it (``"gelu_new"`` for keras_hub presets, whose GELU is the
    tanh form); ``pooling`` (``"mean"``, ``"cls"``, ``"max"``, ``"mean_sqrt_len"``) and
    ``normalize`` come from a sentence-transformers folder's ``modules.json`` and
    ``1_Pooling/config.json``, else ``None`` / ``False``; ``max_seq_length`` is the
    sentence-transformers input limit (``sentence_bert_config.json``), else ``None``.
    """

    path: str
    format: str
    model_type: str
    hidden_act: str
    vocabulary_size: int
    hidden_dim: int
    num_layers: int
    max_sequence_length: int
    pooling: str | None = None
    normalize: bool = False
    max_seq_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LoadedCheckpoint(NamedTuple):
    """``backbone``: a keras_hub ``BertBackbone`` (inputs ``token_ids``, ``segment_ids``,
    ``padding_mask``; outputs ``sequence_output``, ``pooled_output``); ``tokenizer``: its
    ``WordPieceTokenizer``; ``info``: a ``CheckpointInfo``."""

    backbone: Any
    tokenizer: WordPieceTokenizer
    info: CheckpointInfo


def check_bert_checkpoint(path: str) -> None:
    """Checks a Hugging Face folder without loading weights (a keras_hub preset is checked when
    it loads). Raises ``CheckpointError`` naming the folder and the problem."""
    if is_huggingface_folder(path):
        read_checkpoint_files(path)


def load_bert_checkpoint(path: str, *, dtype: Any = None) -> LoadedCheckpoint:
    """The backbone, tokenizer and ``CheckpointInfo`` of ``path`` (module docstring).

    ``path`` is a Hugging Face checkpoint folder (``config.json`` with ``model_type`` in
    ``SUPPORTED_MODEL_TYPES``), a keras_hub preset folder, or a keras_hub hub name. ``dtype``
    is passed to the backbone (e.g. ``"mixed_float16"``); ``None`` takes Keras' global policy.

    Raises:
        CheckpointError: a Hugging Face folder that is unsupported or incomplete.
        ValueError: a preset keras_hub cannot load.
    """
    from capreolus_opt.models.bert import keras_hub_module

    keras_hub = keras_hub_module()
    if is_huggingface_folder(path):
        return _load_huggingface(path, keras_hub, dtype)
    tokenizer = WordPieceTokenizer.from_preset(path)
    backbone = keras_hub.models.BertBackbone.from_preset(path, dtype=dtype)
    info = CheckpointInfo(
        path=path,
        format="keras_hub",
        model_type="bert",
        hidden_act=getattr(backbone, "hidden_act", "gelu_new"),
        vocabulary_size=backbone.vocabulary_size,
        hidden_dim=backbone.hidden_dim,
        num_layers=backbone.num_layers,
        max_sequence_length=backbone.max_sequence_length,
    )
    return LoadedCheckpoint(backbone, tokenizer, info)


def _load_huggingface(path: str, keras_hub: Any, dtype: Any) -> LoadedCheckpoint:
    from capreolus_opt.models.bert_encoder import BertEncoder

    files = read_checkpoint_files(path)
    tokenizer = WordPieceTokenizer.from_huggingface(path)
    num_segments = int(files.config.get("type_vocab_size", 2))
    # Without dropout the converted copy makes no SeedGenerator: those are numbered per process,
    # and a second set would shift the names (variable paths) of the encoder's own, which must be
    # the same when the saved model is rebuilt in another process.
    converted = keras_hub.models.BertBackbone.from_preset(
        path, num_segments=num_segments, dropout=0.0, dtype=dtype
    )
    config = converted.get_config()
    config.pop("name", None)
    config.pop("trainable", None)
    config.update(dtype=dtype, dropout=float(files.config.get("hidden_dropout_prob", 0.1)))
    backbone = BertEncoder(**config, hidden_act=files.hidden_act)
    pairs = list(zip(backbone.weights, converted.weights, strict=True))
    for mine, theirs in pairs:
        if mine.path != theirs.path or tuple(mine.shape) != tuple(theirs.shape):
            raise RuntimeError(f"{path}: variable {mine.path} does not match {theirs.path}")
        mine.assign(theirs)
    del converted
    info = CheckpointInfo(
        path=path,
        format="huggingface",
        model_type=files.model_type,
        hidden_act=files.hidden_act,
        vocabulary_size=backbone.vocabulary_size,
        hidden_dim=backbone.hidden_dim,
        num_layers=backbone.num_layers,
        max_sequence_length=backbone.max_sequence_length,
        pooling=files.pooling,
        normalize=files.normalize,
        max_seq_length=files.max_seq_length,
    )
    return LoadedCheckpoint(backbone, tokenizer, info)
