"""The word vocabulary of a collection (for models trained from scratch), cached on disk."""

from __future__ import annotations

import collections
import hashlib
import os

from capreolus_opt.data.tokenizer import PAD_TOKEN, UNK_TOKEN, Vocabulary, tokenize
from capreolus_opt.data.trec.formats import iter_collection
from capreolus_opt.data.trec.store import default_cache_dir, file_key


def collection_vocabulary(
    path: str, *, min_count: int, max_size: int | None, cache_dir: str | None
) -> Vocabulary:
    """``Vocabulary.build`` over every document of ``path``, read from the cache when the file
    and the settings are unchanged (one pass over the collection otherwise)."""
    key = f"{file_key(path)}|{min_count}|{max_size}|word-v1"
    folder = os.path.join(cache_dir or default_cache_dir(), "vocab")
    cached = os.path.join(folder, hashlib.sha256(key.encode()).hexdigest()[:24] + ".txt")
    if os.path.isfile(cached):
        return Vocabulary.from_file(cached)
    counts: collections.Counter = collections.Counter()
    for _, _, text in iter_collection(path):
        counts.update(tokenize(text))
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1. Received: {min_count!r}")
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    if max_size is not None:
        kept = kept[: max_size - 2]
    vocabulary = Vocabulary(tokens=[PAD_TOKEN, UNK_TOKEN, *kept])
    os.makedirs(folder, exist_ok=True)
    tmp = f"{cached}.tmp{os.getpid()}"
    vocabulary.save(tmp)
    os.replace(tmp, cached)
    return vocabulary
