"""A Hugging Face checkpoint folder as researchers hold it, read and checked without TensorFlow.

A folder written by ``transformers``' ``save_pretrained`` (or downloaded from the hub, e.g.
``sentence-transformers/all-MiniLM-L6-v2``) holds ``config.json`` (with ``model_type``), the
weights as ``model.safetensors`` (or shards listed in ``model.safetensors.index.json``) and the
tokenizer: ``tokenizer_config.json`` plus ``vocab.txt`` and/or ``tokenizer.json``. A
sentence-transformers folder adds ``modules.json``, ``1_Pooling/config.json`` and
``sentence_bert_config.json``. A keras_hub preset's ``config.json`` has no ``model_type``
(it names a keras_hub class instead), which is how the two are told apart.

The tokenizer's settings are read as ``transformers``' ``BertTokenizer`` reads them, so the ids
are the checkpoint's own: ``do_lower_case`` (default true), ``strip_accents`` (default null:
strip exactly when lowercasing, as the original BERT) and ``tokenize_chinese_chars`` (default
true) come from ``tokenizer_config.json``; ``transformers`` rebuilds ``tokenizer.json``'s
normalizer from these, so its ``normalizer`` entry is not consulted. The vocabulary is
``vocab.txt`` when present (id = line number - 1), else ``tokenizer.json``'s WordPiece vocabulary;
when both are present they must agree.

Everything here is checked before a run is recorded: a ``model_type`` outside
``SUPPORTED_MODEL_TYPES``, missing weights or vocabulary, and a vocabulary with more tokens than
the weights' token-embedding rows are each a ``CheckpointError`` naming the folder. The weights'
shapes come from the safetensors header alone (an 8-byte little-endian length, then JSON), so no
tensor is read.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import struct
from typing import Any

#: ``config.json`` ``model_type`` values whose weights keras_hub's converter maps onto
#: ``BertBackbone`` and whose tokenizer is BERT's WordPiece (MiniLM checkpoints are ``bert``).
SUPPORTED_MODEL_TYPES = ("bert",)
#: ``hidden_act`` -> whether keras' GELU takes the tanh approximation. transformers' ``"gelu"`` is
#: the exact erf form; ``"gelu_new"`` and ``"gelu_pytorch_tanh"`` are the tanh approximation.
ACTIVATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True}
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
VOCAB_FILE = "vocab.txt"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
_EMBEDDING_KEY = "embeddings.word_embeddings.weight"
_TOKENIZER_CLASSES = ("BertTokenizer", "BertTokenizerFast")
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
# keras_hub's BertBackbone hard-codes this LayerNorm epsilon (BERT's own).
_LAYER_NORM_EPS = 1e-12


class CheckpointError(ValueError):
    """A Hugging Face folder that cannot be used as it is; the message names the folder."""


@dataclasses.dataclass(frozen=True)
class TokenizerSettings:
    """What ``WordPieceTokenizer`` needs to reproduce the checkpoint's own ids."""

    tokens: list[str]
    lowercase: bool
    strip_accents: bool | None
    split_on_cjk: bool


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """A checked Hugging Face folder: its config, tokenizer and sentence-embedding settings.

    ``pooling`` is ``"mean"``, ``"cls"``, ``"max"`` or ``"mean_sqrt_len"`` when the folder's
    sentence-transformers pooling module says so, else ``None``; ``normalize`` whether a
    ``Normalize`` module follows it; ``max_seq_length`` the sentence-transformers input limit.
    """

    path: str
    model_type: str
    config: dict[str, Any]
    hidden_act: str
    embedding_rows: int
    tokenizer: TokenizerSettings
    pooling: str | None
    normalize: bool
    max_seq_length: int | None


def is_huggingface_folder(path: str) -> bool:
    """Whether ``path`` is a folder whose ``config.json`` is a transformers config."""
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        return False
    try:
        data = _load_json(config)
    except CheckpointError:
        return False
    return isinstance(data, dict) and "model_type" in data and "class_name" not in data


def read_checkpoint_files(path: str) -> CheckpointFiles:
    """Reads and checks the Hugging Face folder ``path`` (what the module docstring lists).

    Raises:
        CheckpointError: unsupported ``model_type``, missing weights or vocabulary, a vocabulary
            larger than the token embedding, or a setting keras_hub's BertBackbone cannot express.
    """
    config = _load_json(os.path.join(path, "config.json"))
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CheckpointError(
            f"{path}: config.json has model_type {model_type!r}; supported model types: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (BERT family, MiniLM included)."
        )
    hidden_act = _check_architecture(path, config)
    rows = _embedding_rows(path)
    if config.get("vocab_size") != rows:
        raise CheckpointError(
            f"{path}: config.json says vocab_size={config.get('vocab_size')!r} but the weights' "
            f"token embedding has {rows} rows."
        )
    tokenizer = _tokenizer_settings(path)
    if len(tokenizer.tokens) > rows:
        raise CheckpointError(
            f"{path}: the vocabulary has {len(tokenizer.tokens)} tokens but the weights' token "
            f"embedding has only {rows} rows (ids past {rows - 1} would have no embedding)."
        )
    pooling, normalize, max_seq_length = _sentence_transformers(path)
    return CheckpointFiles(
        path=path,
        model_type=model_type,
        config=config,
        hidden_act=hidden_act,
        embedding_rows=rows,
        tokenizer=tokenizer,
        pooling=pooling,
        normalize=normalize,
        max_seq_length=max_seq_length,
    )


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    except ValueError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def _check_architecture(path: str, config: dict[str, Any]) -> str:
    """The checkpoint's ``hidden_act``, after refusing what BertBackbone would compute wrongly."""
    hidden_act = config.get("hidden_act", "gelu")
    if hidden_act not in ACTIVATIONS:
        raise CheckpointError(
            f"{path}: config.json has hidden_act {hidden_act!r}; supported: "
            f"{', '.join(ACTIVATIONS)}."
        )
    position = config.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise CheckpointError(
            f"{path}: config.json has position_embedding_type {position!r}; only 'absolute' "
            "(BERT's learned positions) is supported."
        )
    eps = config.get("layer_norm_eps", _LAYER_NORM_EPS)
    if not isinstance(eps, (int, float)) or abs(eps - _LAYER_NORM_EPS) > 1e-15:
        raise CheckpointError(
            f"{path}: config.json has layer_norm_eps {eps!r}; keras_hub's BertBackbone uses "
            f"{_LAYER_NORM_EPS} (BERT's own)."
        )
    return hidden_act


def _weight_files(path: str) -> list[str]:
    index = os.path.join(path, WEIGHTS_INDEX)
    if os.path.isfile(index):
        weight_map = _load_json(index).get("weight_map", {})
        return sorted({os.path.join(path, name) for name in weight_map.values()})
    single = os.path.join(path, WEIGHTS_FILE)
    if os.path.isfile(single):
        return [single]
    others = [
        name
        for name in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack")
        if os.path.isfile(os.path.join(path, name))
    ]
    found = ""
    if others:
        found = f" (it has {', '.join(others)}: re-save it with save_pretrained, which writes "
        found += "safetensors)"
    raise CheckpointError(f"{path}: no weights; expected {WEIGHTS_FILE} or {WEIGHTS_INDEX}{found}.")


def safetensors_header(path: str) -> dict[str, Any]:
    """The JSON header of a safetensors file: tensor name -> ``{"dtype", "shape", ...}``."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            return json.loads(f.read(size))
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or err})") from None
    except (struct.error, ValueError) as err:
        raise CheckpointError(f"{path}: not a safetensors file ({err})") from None


def _embedding_rows(path: str) -> int:
    for file in _weight_files(path):
        for name, entry in safetensors_header(file).items():
            # "bert." or other prefixes, as keras_hub's loader accepts them.
            if name == _EMBEDDING_KEY or name.endswith("." + _EMBEDDING_KEY):
                return int(entry["shape"][0])
    raise CheckpointError(f"{path}: the weights have no {_EMBEDDING_KEY} (not a BERT encoder?).")


def _tokenizer_settings(path: str) -> TokenizerSettings:
    config_path = os.path.join(path, TOKENIZER_CONFIG_FILE)
    config = _load_json(config_path) if os.path.isfile(config_path) else {}
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class is not None and tokenizer_class not in _TOKENIZER_CLASSES:
        raise CheckpointError(
            f"{config_path}: tokenizer_class {tokenizer_class!r}; supported: "
            f"{', '.join(_TOKENIZER_CLASSES)} (WordPiece)."
        )
    if config.get("do_basic_tokenize", True) is False:
        raise CheckpointError(
            f"{config_path}: do_basic_tokenize false is not supported (BERT splits on "
            "whitespace and punctuation before WordPiece)."
        )
    tokens = _vocabulary(path)
    missing = [t for t in _SPECIAL_TOKENS if t not in set(tokens)]
    if missing:
        raise CheckpointError(f"{path}: the vocabulary lacks BERT's special tokens {missing}.")
    if len(set(tokens)) != len(tokens):
        repeated = sorted(t for t, n in collections.Counter(tokens).items() if n > 1)[:5]
        raise CheckpointError(f"{path}: the vocabulary repeats tokens {repeated}.")
    strip_accents = config.get("strip_accents")
    return TokenizerSettings(
        tokens=tokens,
        lowercase=bool(config.get("do_lower_case", True)),
        strip_accents=None if strip_accents is None else bool(strip_accents),
        split_on_cjk=bool(config.get("tokenize_chinese_chars", True)),
    )


def _vocabulary(path: str) -> list[str]:
    vocab_path = os.path.join(path, VOCAB_FILE)
    fast_path = os.path.join(path, TOKENIZER_FILE)
    from_fast = _fast_vocabulary(fast_path) if os.path.isfile(fast_path) else None
    if os.path.isfile(vocab_path):
        with open(vocab_path, encoding="utf-8") as f:
            # transformers' load_vocab: one token per line, only the newline removed.
            tokens = [line.rstrip("\n") for line in f]
        if from_fast is not None and from_fast != tokens:
            raise CheckpointError(
                f"{path}: {VOCAB_FILE} ({len(tokens)} tokens) and {TOKENIZER_FILE} "
                f"({len(from_fast)} tokens) hold different vocabularies."
            )
        return tokens
    if from_fast is None:
        raise CheckpointError(
            f"{path}: no vocabulary; expected {VOCAB_FILE} or {TOKENIZER_FILE} (WordPiece)."
        )
    return from_fast


def _fast_vocabulary(path: str) -> list[str]:
    model = _load_json(path).get("model") or {}
    if model.get("type") != "WordPiece":
        raise CheckpointError(
            f"{path}: tokenizer model {model.get('type')!r}; only WordPiece is supported."
        )
    vocab = model.get("vocab") or {}
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise CheckpointError(f"{path}: the WordPiece ids are not 0..{len(tokens) - 1}.")
    return tokens


def _sentence_transformers(path: str) -> tuple[str | None, bool, int | None]:
    """``(pooling, normalize, max_seq_length)`` from the sentence-transformers files, if any."""
    pooling_dir, normalize = "1_Pooling", False
    modules_path = os.path.join(path, "modules.json")
    if os.path.isfile(modules_path):
        modules = _load_json(modules_path)
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith(".Pooling"):
                pooling_dir = module.get("path", pooling_dir)
            normalize = normalize or kind.endswith(".Normalize")
    pooling = None
    pooling_path = os.path.join(path, pooling_dir, "config.json")
    if os.path.isfile(pooling_path):
        settings = _load_json(pooling_path)
        modes = [
            mode
            for mode in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")
            if settings.get(f"pooling_mode_{mode}")
        ]
        if len(modes) != 1:
            raise CheckpointError(
                f"{pooling_path}: expected exactly one pooling_mode_* true, got {modes or 'none'}."
            )
        pooling = {
            "cls_token": "cls",
            "mean_tokens": "mean",
            "max_tokens": "max",
            "mean_sqrt_len_tokens": "mean_sqrt_len",
        }[modes[0]]
    max_seq_length = None
    st_path = os.path.join(path, "sentence_bert_config.json")
    if os.path.isfile(st_path):
        max_seq_length = _load_json(st_path).get("max_seq_length")
    return pooling, normalize, max_seq_length
