"""A simple word tokenizer and a vocabulary with PAD and UNK ids.

The tokenizer lowercases and splits on every run of non-alphanumeric characters (Unicode-aware:
``str.isalnum`` semantics via the ``\\w`` class minus ``_``), so ``"Deer-Park, 2024!"`` becomes
``["deer", "park", "2024"]``. The vocabulary is built from training text: tokens are ordered by
descending count, ties broken alphabetically, so the same text always gives the same ids.
"""

from __future__ import annotations

import collections
import hashlib
import re
from collections.abc import Iterable, Sequence

import numpy as np

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"

# `[^\W_]+` is "one or more alphanumerics": \w minus the underscore.
_TOKEN_RE = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercases ``text`` and returns its maximal alphanumeric runs, in order."""
    return _TOKEN_RE.findall(text.lower())


class Vocabulary:
    """A token <-> id mapping where the id of a token is its position in ``tokens``.

    ``pad_token`` and ``unk_token`` must be in ``tokens``; unknown tokens map to the UNK id and
    sequences are padded with the PAD id. ``Vocabulary.build`` puts PAD at 0 and UNK at 1;
    ``Vocabulary.from_file`` keeps the file's order (e.g. a BERT ``vocab.txt``, PAD 0, UNK 100).
    """

    def __init__(
        self,
        *,
        tokens: Sequence[str],
        pad_token: str = PAD_TOKEN,
        unk_token: str = UNK_TOKEN,
    ) -> None:
        self.tokens = list(tokens)
        self._ids = {}
        for i, token in enumerate(self.tokens):
            if token in self._ids:
                raise ValueError(
                    f"Vocabulary tokens must be unique; {token!r} appears at positions "
                    f"{self._ids[token]} and {i}."
                )
            self._ids[token] = i
        for role, token in (("pad_token", pad_token), ("unk_token", unk_token)):
            if token not in self._ids:
                raise ValueError(
                    f"{role}={token!r} is not in the vocabulary ({len(self.tokens)} tokens)."
                )
        self.pad_token = pad_token
        self.unk_token = unk_token
        self.pad_id = self._ids[pad_token]
        self.unk_id = self._ids[unk_token]

    @classmethod
    def build(
        cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        """Builds a vocabulary from ``texts``: ``[PAD]`` = 0, ``[UNK]`` = 1, then every token seen
        at least ``min_count`` times by descending count (ties alphabetical), truncated so that the
        whole vocabulary (PAD and UNK included) has at most ``max_size`` entries."""
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1. Received: {min_count!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 2):
            raise ValueError(
                f"max_size must be None or an integer >= 2 (PAD and UNK). Received: {max_size!r}"
            )
        counts = collections.Counter()
        for text in texts:
            counts.update(tokenize(text))
        kept = sorted(
            (tok for tok, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls(tokens=[PAD_TOKEN, UNK_TOKEN, *kept])

    @classmethod
    def from_file(
        cls, path: str, *, pad_token: str = PAD_TOKEN, unk_token: str = UNK_TOKEN
    ) -> Vocabulary:
        """Reads one token per line (id = line number - 1), e.g. a BERT ``vocab.txt``."""
        with open(path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        if tokens and tokens[-1] == "":
            tokens.pop()
        try:
            return cls(tokens=tokens, pad_token=pad_token, unk_token=unk_token)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def __len__(self) -> int:
        return len(self.tokens)

    def token_id(self, token: str) -> int:
        """The id of ``token``, or the UNK id when it is not in the vocabulary."""
        return self._ids.get(token, self.unk_id)

    def encode(self, text: str, *, max_length: int) -> np.ndarray:
        """Tokenizes ``text`` and returns int32 ids of length ``max_length``: truncated at the end,
        or padded at the end with the PAD id."""
        ids = [self.token_id(t) for t in tokenize(text)][:max_length]
        out = np.full((max_length,), self.pad_id, dtype=np.int32)
        out[: len(ids)] = ids
        return out

    def encode_with_length(self, text: str, *, max_length: int) -> tuple[np.ndarray, int]:
        """``encode`` plus the number of tokens before truncation (for truncation statistics)."""
        ids = [self.token_id(t) for t in tokenize(text)]
        out = np.full((max_length,), self.pad_id, dtype=np.int32)
        out[: min(len(ids), max_length)] = ids[:max_length]
        return out, len(ids)

    def fingerprint(self) -> str:
        """A digest of the tokens, PAD and UNK: equal fingerprints encode text identically (the
        key of tokenised-collection caches)."""
        digest = hashlib.sha256("\n".join(self.tokens).encode("utf-8"))
        digest.update(f"\0{self.pad_token}\0{self.unk_token}\0word-v1".encode())
        return digest.hexdigest()[:32]

    def save(self, path: str) -> None:
        """Writes one token per line (what ``from_file`` reads back)."""
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(f"{token}\n" for token in self.tokens)

    def encode_batch(self, texts: Sequence[str], *, max_length: int) -> np.ndarray:
        """``encode`` for each text, stacked: int32 ``[len(texts), max_length]``."""
        out = np.full((len(texts), max_length), self.pad_id, dtype=np.int32)
        for i, text in enumerate(texts):
            out[i] = self.encode(text, max_length=max_length)
        return out
