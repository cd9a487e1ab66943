"""A tokenised collection on disk: token ids memory-mapped, documents looked up by id.

``tokenized_collection`` tokenises a collection once into a cache folder keyed by the file
(absolute path, size, modification time), the encoder's ``fingerprint()`` and the document
length; a second run with the same key maps the cached arrays instead (no tokenisation). The
folder holds ``tokens.npy`` (int32 ``[N, max_length]``, opened with ``mmap_mode="r"``, so only
the rows that are read come into memory), ``lengths.npy`` (tokens before truncation),
``docids.npy`` (UTF-8 ids sorted, as fixed-width bytes) and ``order.npy`` (the row of each
sorted id): one array entry per document instead of a Python string, so a 1M-document
collection is served in a few hundred MB (benchmarks/trec_data.py).

An encoder has ``pad_id``, ``fingerprint() -> str`` and ``encode_with_length(text, *,
max_length) -> (int32 ids [max_length], untruncated length)`` (``tokenizer.Vocabulary`` does);
one with ``encode_batch_with_lengths`` (``wordpiece.WordPieceTokenizer``) is called on batches of
documents instead.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from capreolus_opt.data.errors import DataError
from capreolus_opt.data.trec.formats import iter_collection

_VERSION = "1"


def default_cache_dir() -> str:
    """``$CAPREOLUS_CACHE`` or ``~/.cache/capreolus_opt``."""
    return os.environ.get("CAPREOLUS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "capreolus_opt"
    )


def file_key(path: str) -> str:
    """Absolute path, size and mtime of ``path``: changes whenever the file is rewritten."""
    stat = os.stat(path)
    return f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"


class TokenizedCollection:
    """Token ids of every document of a collection, by document id (see the module docstring)."""

    def __init__(self, folder: str, *, from_cache: bool) -> None:
        self.folder = folder
        self.from_cache = from_cache
        self.tokens = np.load(os.path.join(folder, "tokens.npy"), mmap_mode="r")
        self.lengths = np.load(os.path.join(folder, "lengths.npy"), mmap_mode="r")
        self._sorted_ids = np.load(os.path.join(folder, "docids.npy"))
        self._order = np.load(os.path.join(folder, "order.npy"))
        with open(os.path.join(folder, "meta.json"), encoding="utf-8") as f:
            self.path = json.load(f)["path"]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def narrowed(self, max_length: int) -> TokenizedCollection:
        """The same collection cut at ``max_length`` tokens (a view of the first columns: the
        encoders cut at the end, so these equal a collection tokenised at ``max_length``)."""
        if max_length > self.tokens.shape[1]:
            raise ValueError(f"cannot widen a collection stored at {self.tokens.shape[1]} tokens")
        view = copy.copy(self)
        view.tokens = self.tokens[:, :max_length]
        return view

    def rows(self, docids: Sequence[str]) -> np.ndarray:
        """Row numbers of ``docids``; -1 for an id that is not in the collection."""
        keys = np.array([d.encode("utf-8") for d in docids], dtype=self._sorted_ids.dtype)
        pos = np.searchsorted(self._sorted_ids, keys)
        pos = np.minimum(pos, len(self._sorted_ids) - 1)
        found = self._sorted_ids[pos] == keys
        # An id longer than the widest stored one is truncated by the cast: check the length.
        found &= np.array([len(d.encode("utf-8")) for d in docids]) <= self._sorted_ids.itemsize
        return np.where(found, self._order[pos], -1).astype(np.int64)


_BATCH = 4096  # documents per batched tokenizer call


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _build(path: str, encoder: Any, max_length: int, folder: str) -> None:
    n = _count_lines(path)
    tokens = np.lib.format.open_memmap(
        os.path.join(folder, "tokens.npy"), mode="w+", dtype=np.int32, shape=(n, max_length)
    )
    lengths = np.zeros((n,), np.int32)
    docids: list[bytes] = []
    lines = np.zeros((n,), np.int64)
    batched = getattr(encoder, "encode_batch_with_lengths", None)  # WordPiece: Rust, in batches
    texts: list[str] = []

    def flush(out: np.ndarray, stop: int) -> None:
        ids, counts = batched(texts, max_length=max_length)
        out[stop - len(texts) : stop], lengths[stop - len(texts) : stop] = ids, counts
        texts.clear()

    row = -1
    for row, (lineno, docid, text) in enumerate(iter_collection(path)):
        if batched is None:
            tokens[row], lengths[row] = encoder.encode_with_length(text, max_length=max_length)
        else:
            texts.append(text)
            if len(texts) == _BATCH:
                flush(tokens, row + 1)
        docids.append(docid.encode("utf-8"))
        lines[row] = lineno
    if texts:
        flush(tokens, row + 1)
    tokens.flush()
    del tokens
    ids = np.array(docids, dtype=f"S{max(len(d) for d in docids)}")
    del docids
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    dup = np.flatnonzero(ids[1:] == ids[:-1])
    if dup.size:
        first, second = sorted((int(lines[order[dup[0]]]), int(lines[order[dup[0] + 1]])))
        raise DataError(
            path,
            second,
            f"document id {ids[dup[0]].decode()!r} appears twice (first at line {first})",
        )
    np.save(os.path.join(folder, "lengths.npy"), lengths)
    np.save(os.path.join(folder, "docids.npy"), ids)
    np.save(os.path.join(folder, "order.npy"), order.astype(np.int64))


def tokenized_collection(
    path: str, *, encoder: Any, max_length: int, cache_dir: str | None = None
) -> TokenizedCollection:
    """The tokenised collection at ``path``, from the cache or built into it (module docstring).

    Raises ``DataError`` naming the line of a malformed document or a repeated document id.
    """
    if not os.path.isfile(path):
        raise DataError(path, None, "collection file does not exist")
    key = "|".join([_VERSION, file_key(path), encoder.fingerprint(), str(max_length)])
    root = cache_dir or default_cache_dir()
    folder = os.path.join(root, "collections", hashlib.sha256(key.encode()).hexdigest()[:24])
    if os.path.isfile(os.path.join(folder, "meta.json")):
        return TokenizedCollection(folder, from_cache=True)

    def build(tmp: str) -> dict[str, Any]:
        _build(path, encoder, max_length, tmp)
        return {"key": key, "path": os.path.abspath(path)}

    build_cache_folder(folder, build)
    return TokenizedCollection(folder, from_cache=False)


def build_cache_folder(folder: str, build: Callable[[str], dict[str, Any]]) -> None:
    """Makes the cache folder ``folder``: ``build(tmp)`` fills a temporary sibling and returns
    what ``meta.json`` (written last) holds, then the sibling is renamed to ``folder``. A folder
    with ``meta.json`` is complete; a failure or kill leaves no such folder, and when another
    process finished the same folder first, theirs is kept."""
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = f"{folder}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        meta = build(tmp)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same folder first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
