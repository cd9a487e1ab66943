"""Ranking data from tab-separated files.

Two line formats (UTF-8, one example per line, blank lines ignored):

- ``"labelled"``: ``query<TAB>document<TAB>label`` with an integer label >= 0 (0 = not relevant;
  larger = more relevant, used as the nDCG gain).
- ``"triples"``: ``query<TAB>positive document<TAB>negative document``.

Training needs triples: a labelled training file yields, per query (identified by its exact
text), every (document with the higher label, document with the lower label) pair in file
order, at most ``max_pairs_per_query`` of them. Evaluation needs labels: a triples evaluation file
yields each distinct (query, document) once, positives with label 1 and negatives with label 0
(a document seen both ways keeps label 1). Evaluation query ids number distinct query texts in
order of first appearance.

The vocabulary is built from the training file's queries and documents (``min_count``,
``max_vocab_size``; PAD = 0, UNK = 1) unless ``vocab_path`` names a one-token-per-line file.
Unknown tokens map to UNK. A ``tokenizer`` (e.g. a pretrained BERT's WordPiece,
``data.wordpiece.WordPieceTokenizer``) replaces the vocabulary: anything with ``len()``,
``pad_id`` and ``encode_batch(texts, max_length=)``. A first line of column names (every field
one of ``HEADER_WORDS``, e.g. ``query<TAB>positive<TAB>negative``) is a header and skipped. A
malformed line, invalid UTF-8, a file without examples, or an evaluation file in which no
document has a label > 0 (every metric would be 0.0) raise ``DataError("FILE:LINE: ...")``
(a ``ValueError``) saying what was expected.
"""

from __future__ import annotations

import collections
import functools
from typing import Any

import numpy as np

from capreolus_opt.data.errors import DataError, read_lines
from capreolus_opt.data.ranking_data import EvalPairs, TrainTriples
from capreolus_opt.data.tokenizer import Vocabulary

FORMATS = ("labelled", "triples")
_FIELDS = {
    "labelled": "(query, document, label)",
    "triples": "(query, positive document, negative document)",
}
#: Column names that make a first line a header (compared lowercased, without spaces/_/-).
HEADER_WORDS = frozenset(
    "query question qid q positive pos positivedocument positivepassage negative neg "
    "negativedocument negativepassage document doc docid passage text label relevance rel "
    "grade".split()
)


def _is_header(fields: list[str]) -> bool:
    return all(f.strip().lower().replace(" ", "").replace("_", "").replace("-", "") in HEADER_WORDS
               for f in fields)  # fmt: skip


def read_tsv(path: str, *, fmt: str) -> list[tuple[str, str, str | int]]:
    """Reads ``path`` in format ``fmt`` (see module docstring); labels come back as ints.

    Raises ``DataError`` naming ``path:line`` for a wrong field count, an empty field, invalid
    UTF-8, or (format ``"labelled"``) a label that is not an integer >= 0; and for a file with no
    examples (a header line alone is none).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}. Received: {fmt!r}")
    rows: list[tuple[str, str, str | int]] = []
    header = False
    for lineno, line in read_lines(path):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(
                path, lineno, f"expected 3 tab-separated fields {_FIELDS[fmt]} (format "
                f"{fmt!r}), got {len(fields)}: {line[:80]!r}"
            )  # fmt: skip
        if not rows and not header and _is_header(fields):
            header = True
            continue
        for i, field in enumerate(fields):
            if not field.strip():
                raise DataError(path, lineno, f"field {i + 1} of {_FIELDS[fmt]} is empty")
        if fmt == "labelled":
            try:
                label = int(fields[2])
            except ValueError:
                label = -1
            if label < 0:
                raise DataError(
                    path, lineno, f"expected an integer label >= 0 in field 3 of "
                    f"{_FIELDS[fmt]}, got {fields[2]!r}"
                )  # fmt: skip
            rows.append((fields[0], fields[1], label))
        else:
            rows.append((fields[0], fields[1], fields[2]))
    if not rows:
        after = " after the header line" if header else ""
        raise DataError(path, None, f"no examples{after} (expected lines of {_FIELDS[fmt]})")
    return rows


def _labelled_to_triples(
    rows: list[tuple[str, str, int]], max_pairs_per_query: int
) -> list[tuple[str, str, str]]:
    by_query: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for query, doc, label in rows:
        by_query[query].append((doc, label))
    triples = []
    for query, docs in by_query.items():
        pairs = [(query, hi, lo) for hi, hl in docs for lo, ll in docs if hl > ll][
            :max_pairs_per_query
        ]
        triples.extend(pairs)
    return triples


def _triples_to_labelled(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, int]]:
    labels: dict[tuple[str, str], int] = {}
    for query, pos, neg in rows:
        labels[(query, pos)] = 1
        labels.setdefault((query, neg), 0)
    return [(q, d, lab) for (q, d), lab in labels.items()]


class TsvRankingData:
    """Training triples and evaluation pairs read from TSV files (see the module docstring)."""

    def __init__(
        self,
        *,
        train_path: str,
        eval_path: str,
        train_format: str = "triples",
        eval_format: str = "labelled",
        max_query_length: int = 16,
        max_doc_length: int = 128,
        min_count: int = 1,
        max_vocab_size: int | None = 30000,
        vocab_path: str | None = None,
        max_pairs_per_query: int = 100,
        tokenizer: Any = None,
    ) -> None:
        for name, value in (
            ("max_query_length", max_query_length),
            ("max_doc_length", max_doc_length),
            ("max_pairs_per_query", max_pairs_per_query),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {value!r}")
        self.train_path = train_path
        self.eval_path = eval_path
        self.max_query_length = max_query_length
        self.max_doc_length = max_doc_length
        train_rows = read_tsv(train_path, fmt=train_format)
        if train_format == "labelled":
            self._train = _labelled_to_triples(train_rows, max_pairs_per_query)
            if not self._train:
                raise DataError(
                    train_path, None, "no training pairs: no query has documents with two "
                    "different labels"
                )  # fmt: skip
        else:
            self._train = train_rows
        eval_rows = read_tsv(eval_path, fmt=eval_format)
        self._eval = eval_rows if eval_format == "labelled" else _triples_to_labelled(eval_rows)
        if not any(row[2] > 0 for row in self._eval):
            raise DataError(
                eval_path, None, "no document has a label > 0: every metric would be 0.0 "
                "(expected graded labels, 0 = not relevant)"
            )  # fmt: skip
        if tokenizer is not None and vocab_path is not None:
            raise ValueError("Give TsvRankingData a tokenizer or a vocab_path, not both.")
        if tokenizer is not None:
            self.vocabulary = tokenizer
        elif vocab_path is not None:
            try:
                self.vocabulary = Vocabulary.from_file(vocab_path)
            except (OSError, UnicodeDecodeError) as err:
                raise DataError(
                    vocab_path, None, f"cannot be read as a vocabulary: {err}"
                ) from None
        else:
            texts = [text for row in train_rows for text in (row[0], row[1])]
            if train_format == "triples":
                texts.extend(str(row[2]) for row in train_rows)
            self.vocabulary = Vocabulary.build(texts, min_count=min_count, max_size=max_vocab_size)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def pad_id(self) -> int:
        return self.vocabulary.pad_id

    @functools.cache  # noqa: B019 -- one instance per run; the arrays are what we want to keep
    def train_triples(self) -> TrainTriples:
        """The training triples, tokenized and padded (file order)."""
        v, lq, ld = self.vocabulary, self.max_query_length, self.max_doc_length
        return TrainTriples(
            query=v.encode_batch([t[0] for t in self._train], max_length=lq),
            positive=v.encode_batch([t[1] for t in self._train], max_length=ld),
            negative=v.encode_batch([t[2] for t in self._train], max_length=ld),
        )

    @functools.cache  # noqa: B019
    def eval_pairs(self) -> EvalPairs:
        """The evaluation pairs, tokenized and padded (file order)."""
        v = self.vocabulary
        qids: dict[str, int] = {}
        for query, _, _ in self._eval:
            qids.setdefault(query, len(qids))
        return EvalPairs(
            qid=np.array([qids[r[0]] for r in self._eval], np.int32),
            query=v.encode_batch([r[0] for r in self._eval], max_length=self.max_query_length),
            document=v.encode_batch([r[1] for r in self._eval], max_length=self.max_doc_length),
            label=np.array([r[2] for r in self._eval], np.int32),
        )
