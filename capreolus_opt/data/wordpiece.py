"""BERT's WordPiece tokenizer on the host, from a keras_hub preset's own vocabulary and settings.

Text is tokenised in the input pipeline with the HuggingFace ``tokenizers`` package (Rust), not in
the TensorFlow graph, so keras_hub's tensorflow-text dependency is never needed. The rules are
BERT's (Devlin et al. 2019, ``tokenization.py``): control characters dropped, whitespace
normalised, optional lowercasing and accent stripping, splits on whitespace, punctuation and CJK
characters, then greedy longest-match-first WordPiece with ``##`` continuations; a word longer
than 100 characters, or one the vocabulary cannot cover, becomes ``[UNK]``. Special tokens
written inside the text (``"[SEP]"``) are ordinary text, never the special ids.

Pairs are packed as BERT expects: ``[CLS] query [SEP] document [SEP]``, segment 0 for
``[CLS] query [SEP]`` and 1 for ``document [SEP]``, padded at the end. When the pair does not fit
in ``max_len``, tokens are cut from the end of the longer side first, then from both sides in
turn (transformers' ``truncation="longest_first"``); ``TruncationStats`` says how much was cut.

A keras_hub preset folder has ``tokenizer.json`` (``lowercase``, ``strip_accents``, ...) and
``assets/tokenizer/vocabulary.txt`` (one token per line, id = line number - 1). A Hugging Face
checkpoint folder is read by ``data.checkpoint_files`` (``vocab.txt`` / ``tokenizer.json`` and
``tokenizer_config.json``, as transformers reads them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from capreolus_opt.data.checkpoint_files import (
    CheckpointError,
    is_huggingface_folder,
    read_checkpoint_files,
)
from capreolus_opt.data.tokenizer import Vocabulary
from capreolus_opt.optional import require

VOCAB_ASSET = os.path.join("assets", "tokenizer", "vocabulary.txt")
TOKENIZER_CONFIG = "tokenizer.json"
# BERT's own limit (tokenization.py: max_input_chars_per_word=100); keras_hub counts 100 bytes.
MAX_CHARS_PER_WORD = 100
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


@dataclasses.dataclass
class TruncationStats:
    """How much of the text survived packing: counts over ``pairs`` (query, document) pairs."""

    pairs: int = 0
    queries_truncated: int = 0
    documents_truncated: int = 0
    query_tokens: int = 0
    query_tokens_kept: int = 0
    document_tokens: int = 0
    document_tokens_kept: int = 0

    def __add__(self, other: TruncationStats) -> TruncationStats:
        return TruncationStats(
            *(
                a + b
                for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
            )
        )

    def to_dict(self) -> dict[str, float]:
        """The counts plus ``*_truncated_fraction`` (of pairs) and ``*_tokens_cut_fraction``."""
        out: dict[str, float] = dataclasses.asdict(self)
        n = max(self.pairs, 1)
        out["queries_truncated_fraction"] = self.queries_truncated / n
        out["documents_truncated_fraction"] = self.documents_truncated / n
        for side in ("query", "document"):
            total = getattr(self, f"{side}_tokens")
            kept = getattr(self, f"{side}_tokens_kept")
            out[f"{side}_tokens_cut_fraction"] = (total - kept) / total if total else 0.0
        return out


class EncodedPairs(NamedTuple):
    """``features``: int32 ``token_ids``, ``segment_ids``, ``padding_mask`` of shape ``[N, L]``."""

    features: dict[str, np.ndarray]
    stats: TruncationStats


def longest_first_lengths(
    query_lengths: np.ndarray, document_lengths: np.ndarray, budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kept lengths after cutting ``nq + nd - budget`` tokens, longer side first, then the rest
    split between both sides (the document loses the odd one unless the query is longer)."""
    nq = np.asarray(query_lengths, np.int64)
    nd = np.asarray(document_lengths, np.int64)
    remove = np.maximum(nq + nd - budget, 0)
    first = np.minimum(np.abs(nq - nd), remove)
    second = remove - first
    query_longer = nq > nd
    cut_q = np.where(query_longer, first + second // 2, second // 2)
    cut_d = np.where(query_longer, second - second // 2, first + second - second // 2)
    return nq - cut_q, nd - cut_d


class WordPieceTokenizer:
    """Host-side BERT WordPiece over ``vocabulary`` (a ``Vocabulary`` that holds BERT's specials).

    Duck-types ``data.tokenizer.Vocabulary`` where data sources use it (``len()``, ``pad_id``,
    ``encode``, ``encode_with_length``, ``encode_batch``, ``fingerprint``), so a data source
    (``TsvRankingData``, ``TrecRerankingData``) can take it in place of one.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        *,
        lowercase: bool,
        strip_accents: bool | None = None,
        split_on_cjk: bool = True,
    ) -> None:
        tokenizers = require("tokenizers", "hub")
        Tokenizer, models = tokenizers.Tokenizer, tokenizers.models
        normalizers, pre_tokenizers = tokenizers.normalizers, tokenizers.pre_tokenizers
        missing = [t for t in SPECIAL_TOKENS if t not in vocabulary.tokens]
        if missing:
            raise ValueError(
                f"A BERT WordPiece vocabulary needs {list(SPECIAL_TOKENS)}; missing {missing}."
            )
        self.vocabulary = vocabulary
        self.lowercase = bool(lowercase)
        # BERT strips accents exactly when it lowercases unless told otherwise.
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.split_on_cjk = bool(split_on_cjk)
        ids = {token: i for i, token in enumerate(vocabulary.tokens)}
        self.pad_id, self.unk_id = ids["[PAD]"], ids["[UNK]"]
        self.cls_id, self.sep_id = ids["[CLS]"], ids["[SEP]"]
        tok = Tokenizer(
            models.WordPiece(
                ids,
                unk_token="[UNK]",
                continuing_subword_prefix="##",
                max_input_chars_per_word=MAX_CHARS_PER_WORD,
            )
        )
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True,
            handle_chinese_chars=self.split_on_cjk,
            strip_accents=self.strip_accents,
            lowercase=self.lowercase,
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tokenizer = tok

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def from_vocabulary_file(
        cls, path: str, *, lowercase: bool, strip_accents: bool | None = None
    ) -> WordPieceTokenizer:
        """From a BERT ``vocab.txt`` (one token per line)."""
        return cls(Vocabulary.from_file(path), lowercase=lowercase, strip_accents=strip_accents)

    @classmethod
    def from_preset(cls, preset: str) -> WordPieceTokenizer:
        """From a Hugging Face checkpoint folder (``from_huggingface``), a keras_hub preset folder
        (read directly), else a keras_hub hub name such as ``"bert_base_en_uncased"`` resolved by
        keras_hub (needs internet the first time)."""
        if is_huggingface_folder(preset):
            return cls.from_huggingface(preset)
        if os.path.isdir(preset):
            return cls._from_preset_dir(preset)
        if os.sep in preset and "://" not in preset:
            raise ValueError(
                f"preset {preset!r} is not a folder; expected a keras_hub preset folder "
                "(tokenizer.json, assets/tokenizer/vocabulary.txt) or a hub name."
            )
        keras_hub = require("keras_hub", "hub")  # a hub name, not a folder
        try:
            hub_tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
        except (ValueError, OSError) as e:  # unknown name; no network (requests' errors)
            raise ValueError(
                f"preset {preset!r} is not a folder, and keras_hub could not load it as a hub "
                f"name: {e}"
            ) from e
        config = hub_tokenizer.get_config()
        return cls(
            Vocabulary(tokens=list(hub_tokenizer.get_vocabulary())),
            lowercase=config.get("lowercase", False),
            strip_accents=config.get("strip_accents", False),
            split_on_cjk=config.get("split_on_cjk", True),
        )

    @classmethod
    def from_huggingface(cls, path: str) -> WordPieceTokenizer:
        """The WordPiece of a Hugging Face checkpoint folder, with its own vocabulary, casing and
        accent rules (``data.checkpoint_files``: read as transformers' ``BertTokenizer`` does).

        Raises:
            CheckpointError: the folder is not a supported, complete BERT-family checkpoint.
        """
        settings = read_checkpoint_files(path).tokenizer
        try:
            vocabulary = Vocabulary(tokens=settings.tokens)
            return cls(
                vocabulary,
                lowercase=settings.lowercase,
                strip_accents=settings.strip_accents,
                split_on_cjk=settings.split_on_cjk,
            )
        except ValueError as err:  # repeated tokens, or BERT's special tokens missing
            raise CheckpointError(f"{path}: {err}") from None

    @classmethod
    def _from_preset_dir(cls, preset: str) -> WordPieceTokenizer:
        vocab_path = os.path.join(preset, VOCAB_ASSET)
        config_path = os.path.join(preset, TOKENIZER_CONFIG)
        if not os.path.exists(vocab_path):
            raise ValueError(
                f"preset {preset!r} has no {VOCAB_ASSET}: it carries no vocabulary (expected a "
                "keras_hub preset folder, or a Hugging Face checkpoint folder whose config.json "
                "has a model_type)."
            )
        config: dict[str, Any] = {}
        if os.path.exists(config_path):
            with open(config_path, encoding="utf-8") as f:
                config = json.load(f).get("config", {})
        if "lowercase" not in config:
            raise ValueError(
                f"{config_path}: no 'lowercase' setting; save the preset's tokenizer "
                "(keras_hub BertTokenizer.save_to_preset) so its casing is known."
            )
        return cls(
            Vocabulary.from_file(vocab_path),
            lowercase=config["lowercase"],
            strip_accents=config.get("strip_accents", False),
            split_on_cjk=config.get("split_on_cjk", True),
        )

    def get_config(self) -> dict[str, Any]:
        """keras_hub ``BertTokenizer`` settings (what ``save_to_preset`` writes)."""
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "split": True,
            "split_on_cjk": self.split_on_cjk,
            "suffix_indicator": "##",
            "oov_token": "[UNK]",
            "special_tokens_in_strings": False,
        }

    def save_to_preset(self, preset: str) -> None:
        """Writes ``tokenizer.json`` and the vocabulary in keras_hub's preset layout."""
        os.makedirs(os.path.join(preset, os.path.dirname(VOCAB_ASSET)), exist_ok=True)
        with open(os.path.join(preset, VOCAB_ASSET), "w", encoding="utf-8") as f:
            f.writelines(token + "\n" for token in self.vocabulary.tokens)
        record = {
            "module": "keras_hub.src.models.bert.bert_tokenizer",
            "class_name": "BertTokenizer",
            "config": {"name": "bert_tokenizer", "config_file": TOKENIZER_CONFIG}
            | self.get_config(),
            "registered_name": "keras_hub>BertTokenizer",
        }
        with open(os.path.join(preset, TOKENIZER_CONFIG), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=4)

    # --- encoding --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.vocabulary)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids of each text, without special tokens or truncation."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str. Received: {type(text).__name__}")
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode_batch(self, texts: Sequence[str], *, max_length: int) -> np.ndarray:
        """int32 ``[N, max_length]`` WordPiece ids, cut at the end, padded with ``[PAD]``."""
        return self.encode_batch_with_lengths(texts, max_length=max_length)[0]

    def encode_batch_with_lengths(
        self, texts: Sequence[str], *, max_length: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``encode_batch`` plus each text's int64 token count before the cut, so a caller can
        record how many texts (``lengths > max_length``) and tokens were truncated."""
        _check_length("max_length", max_length, 1)
        ids = self.tokenize(texts)
        out = np.full((len(ids), max_length), self.pad_id, np.int32)
        for i, row in enumerate(ids):
            row = row[:max_length]
            out[i, : len(row)] = row
        return out, np.array([len(row) for row in ids], np.int64)

    def encode(self, text: str, *, max_length: int) -> np.ndarray:
        """int32 ``[max_length]`` WordPiece ids of one text (``Vocabulary.encode``'s contract)."""
        return self.encode_batch([text], max_length=max_length)[0]

    def encode_with_length(self, text: str, *, max_length: int) -> tuple[np.ndarray, int]:
        """``encode`` plus the token count before the cut (``Vocabulary.encode_with_length``)."""
        ids, lengths = self.encode_batch_with_lengths([text], max_length=max_length)
        return ids[0], int(lengths[0])

    def fingerprint(self) -> str:
        """A digest of the vocabulary and settings: equal fingerprints tokenise text identically
        (the key of tokenised-collection caches; never equal to a word-level ``Vocabulary``'s)."""
        digest = hashlib.sha256("\n".join(self.vocabulary.tokens).encode("utf-8"))
        digest.update(json.dumps(self.get_config(), sort_keys=True).encode())
        digest.update(f"\0wordpiece-v1\0{MAX_CHARS_PER_WORD}".encode())
        return digest.hexdigest()[:32]

    def __repr__(self) -> str:
        return f"WordPieceTokenizer({len(self)} tokens, fingerprint {self.fingerprint()})"

    def encode_pairs(
        self, queries: Sequence[str], documents: Sequence[str], max_len: int
    ) -> EncodedPairs:
        """``[CLS] q [SEP] d [SEP]`` for each aligned (query, document), ``max_len`` wide."""
        if len(queries) != len(documents):
            raise ValueError(
                f"queries and documents must align; got {len(queries)} and {len(documents)}."
            )
        return self.pack_pairs(self.tokenize(queries), self.tokenize(documents), max_len)

    def pack_pairs(
        self,
        query_ids: Sequence[Sequence[int]],
        document_ids: Sequence[Sequence[int]],
        max_len: int,
    ) -> EncodedPairs:
        """``encode_pairs`` from ids already tokenised (e.g. a cached collection)."""
        _check_length("max_len", max_len, 3)
        nq = np.array([len(q) for q in query_ids], np.int64)
        nd = np.array([len(d) for d in document_ids], np.int64)
        keep_q, keep_d = longest_first_lengths(nq, nd, max_len - 3)
        n = len(nq)
        token_ids = np.full((n, max_len), self.pad_id, np.int32)
        segment_ids = np.zeros((n, max_len), np.int32)
        for i in range(n):
            q, d = keep_q[i], keep_d[i]
            token_ids[i, 0] = self.cls_id
            token_ids[i, 1 : 1 + q] = query_ids[i][:q]
            token_ids[i, 1 + q] = self.sep_id
            token_ids[i, 2 + q : 2 + q + d] = document_ids[i][:d]
            token_ids[i, 2 + q + d] = self.sep_id
            segment_ids[i, 2 + q : 3 + q + d] = 1
        used = (keep_q + keep_d + 3)[:, None]
        padding_mask = (np.arange(max_len)[None, :] < used).astype(np.int32)
        stats = TruncationStats(
            pairs=n,
            queries_truncated=int((keep_q < nq).sum()),
            documents_truncated=int((keep_d < nd).sum()),
            query_tokens=int(nq.sum()),
            query_tokens_kept=int(keep_q.sum()),
            document_tokens=int(nd.sum()),
            document_tokens_kept=int(keep_d.sum()),
        )
        features = {
            "token_ids": token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
        }
        return EncodedPairs(features, stats)


def _check_length(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}. Received: {value!r}")
