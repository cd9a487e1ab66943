"""Benchmark: host WordPiece (``tokenizers``) against the whole-word ``Vocabulary`` and keras_hub.

What a BERT data source pays to tokenise a collection, as ratios against the project's whole-word
``Vocabulary.encode_batch`` measured in the same process on the same texts:

- ``WordPieceTokenizer.encode_batch`` (Rust, batched);
- ``WordPieceTokenizer.encode_pairs`` (tokenise both sides + host packing with longest_first);
- keras_hub's ``BertTokenizer`` without tensorflow-text (its pure-Python fallback, what keras-hub
  runs when installed with ``--no-deps``), on a subset, when keras_hub is importable.

Texts are generated (no download): words drawn from a 5,000-word synthetic lexicon, ~120 words a
document, a 2,000-token vocabulary of whole words and ``##`` pieces, so many words split. Timings
alternate candidates and report medians (absolute times drift on a shared machine, ratios less).

Measured (2 shared cores, load ~11, 3,000 documents): WordPiece 0.15x the whole-word baseline
(sub-word lookups and BERT's normalisation cost about 7x more per document), packing pairs adds
~3%, and it is 8x faster than keras_hub's pure-Python tokenizer. Building the tokenised
collection store with it (what ``TrecRerankingData`` with a BERT tokenizer does once per
collection): batches of 4,096 documents 1.53x the speed of one call per document (20,000
documents, 2,568 vs 1,684 docs/s, with a test run beside it on the 2 cores).

Run: ``.venv/bin/python benchmarks/wordpiece_throughput.py [--docs 20000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from capreolus_opt.data.tokenizer import Vocabulary
from capreolus_opt.data.wordpiece import WordPieceTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_corpus(n_docs: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """``(documents, queries, vocabulary tokens)``: deterministic synthetic text."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lexicon = ["".join(rng.choice(letters, rng.integers(3, 11))) for _ in range(5000)]
    pieces = sorted({w[:3] for w in lexicon[:1500]} | {"##" + w[3:6] for w in lexicon[:1500]})
    vocab = SPECIALS + lexicon[:500] + pieces[:1495] + [".", ","]
    vocab = list(dict.fromkeys(vocab))
    docs = [" ".join(rng.choice(lexicon, 120)) + "." for _ in range(n_docs)]
    queries = [" ".join(rng.choice(lexicon, 4)) for _ in range(n_docs)]
    return docs, queries, vocab


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keras-hub-docs", type=int, default=500)
    args = parser.parse_args()
    docs, queries, vocab = make_corpus(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vocab.txt")
        with open(path, "w") as f:
            f.write("\n".join(vocab) + "\n")
        wordpiece = WordPieceTokenizer.from_vocabulary_file(path, lowercase=True)
        whole_words = Vocabulary.from_file(path)
    candidates = {
        "Vocabulary.encode_batch (whole words, baseline)": lambda: whole_words.encode_batch(
            docs, max_length=128
        ),
        "WordPieceTokenizer.encode_batch": lambda: wordpiece.encode_batch(docs, max_length=128),
        "WordPieceTokenizer.encode_pairs (max_len 160)": lambda: wordpiece.encode_pairs(
            queries, docs, 160
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.repeats):
        for name, fn in candidates.items():
            times[name].append(_time(fn))
    base = statistics.median(times["Vocabulary.encode_batch (whole words, baseline)"])
    tokens = sum(len(ids) for ids in wordpiece.tokenize(docs))
    print(f"{args.docs} documents, {tokens} WordPiece tokens, {len(vocab)}-token vocabulary")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:50s} {args.docs / median:10.0f} docs/s  {base / median:6.2f}x baseline")
    _keras_hub_python(docs[: args.keras_hub_docs], vocab, wordpiece, base / args.docs)
    _collection_store(docs, wordpiece, args.repeats)


class _OneAtATime:
    """``wordpiece`` without its batch method: the store then encodes document by document."""

    def __init__(self, wordpiece: WordPieceTokenizer) -> None:
        self._w = wordpiece
        self.pad_id = wordpiece.pad_id
        self.encode_with_length = wordpiece.encode_with_length
        self.fingerprint = wordpiece.fingerprint


def _collection_store(docs, wordpiece, repeats) -> None:
    """Building the tokenised-collection store (``TrecRerankingData`` with a BERT tokenizer):
    batched ``encode_batch_with_lengths`` calls against one ``encode_with_length`` per document."""
    from capreolus_opt.data.trec.store import tokenized_collection

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "collection.tsv")
        with open(path, "w") as f:
            f.writelines(f"d{i}\t{d}\n" for i, d in enumerate(docs))
        times: dict[str, list[float]] = {"one at a time": [], "batched": []}
        for r in range(repeats):
            for name, enc in (("one at a time", _OneAtATime(wordpiece)), ("batched", wordpiece)):
                cache = os.path.join(tmp, f"cache-{name[0]}{r}")  # empty: always a cold build
                times[name].append(
                    _time(lambda e=enc, c=cache: tokenized_collection(
                        path, encoder=e, max_length=128, cache_dir=c))
                )  # fmt: skip
        one, batched = (statistics.median(times[n]) for n in ("one at a time", "batched"))
        print(
            f"{'collection store, WordPiece one doc at a time':50s} {len(docs) / one:10.0f} docs/s"
        )
        print(
            f"{'collection store, WordPiece batched (4096 docs)':50s} "
            f"{len(docs) / batched:10.0f} docs/s  {one / batched:6.2f}x one at a time"
        )


def _keras_hub_python(docs, vocab, wordpiece, base_per_doc) -> None:
    try:
        import keras_hub
    except ImportError:
        print("keras_hub not installed: its Python tokenizer is not measured")
        return
    hub = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    elapsed = _time(lambda: [hub(d) for d in docs])
    ours = _time(lambda: wordpiece.encode_batch(docs, max_length=128))
    print(
        f"{'keras_hub BertTokenizer (no tensorflow-text)':50s} {len(docs) / elapsed:10.0f} docs/s"
        f"  {base_per_doc * len(docs) / elapsed:6.2f}x baseline; WordPiece is "
        f"{elapsed / ours:.0f}x faster on these {len(docs)} documents"
    )


if __name__ == "__main__":
    main()
