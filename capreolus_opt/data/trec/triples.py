"""Training triples: sampled from the first-stage candidates, or read from a triples file."""

from __future__ import annotations

from typing import Any

import numpy as np

from capreolus_opt.data.errors import DataError
from capreolus_opt.data.ranking_data import TrainTriples
from capreolus_opt.data.trec.formats import read_triples
from capreolus_opt.data.trec.inputs import TrecInputs
from capreolus_opt.data.trec.store import TokenizedCollection

_SAMPLING_STREAM = 7


def _encode_texts(texts: list[str], encoder: Any, max_length: int) -> np.ndarray:
    out = np.empty((len(texts), max_length), np.int32)
    for i, text in enumerate(texts):
        out[i] = encoder.encode_with_length(text, max_length=max_length)[0]
    return out


def sample_triples(
    inputs: TrecInputs,
    rows: dict[str, np.ndarray],
    store: TokenizedCollection,
    encoder: Any,
    query_length: int,
    samples_per_query: int,
    seed: int,
) -> tuple[TrainTriples, np.ndarray]:
    """``samples_per_query`` triples per train query with a relevant and a non-relevant
    candidate (uniform draws, seeded); returns the triples and the document rows they use."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SAMPLING_STREAM]))
    texts, pos_rows, neg_rows = [], [], []
    for qid in inputs.folds["train"]:
        docs = list(inputs.run.get(qid, {}))
        judged = inputs.qrels.get(qid, {})
        relevant = np.array([judged.get(d, 0) > 0 for d in docs], bool)
        if not relevant.any() or relevant.all():
            continue
        candidates = rows[qid]
        pos_rows.append(rng.choice(candidates[relevant], size=samples_per_query))
        neg_rows.append(rng.choice(candidates[~relevant], size=samples_per_query))
        texts.append(inputs.topics[qid])
    queries = _encode_texts(texts, encoder, query_length)
    pos, neg = np.concatenate(pos_rows), np.concatenate(neg_rows)
    triples = TrainTriples(
        query=np.repeat(queries, samples_per_query, axis=0),
        positive=np.asarray(store.tokens[pos]),
        negative=np.asarray(store.tokens[neg]),
    )
    return triples, np.concatenate([pos, neg])


def read_train_triples(
    path: str,
    fmt: str,
    topics: dict[str, str],
    store: TokenizedCollection,
    encoder: Any,
    query_length: int,
) -> tuple[TrainTriples, np.ndarray]:
    """MS MARCO-style triples by id (query from ``topics``, documents from the collection) or by
    text; an unknown id raises ``DataError`` naming the line."""
    rows = read_triples(path)
    doc_length = int(store.tokens.shape[1])
    if fmt == "text":
        triples = TrainTriples(
            query=_encode_texts([r[1] for r in rows], encoder, query_length),
            positive=_encode_texts([r[2] for r in rows], encoder, doc_length),
            negative=_encode_texts([r[3] for r in rows], encoder, doc_length),
        )
        return triples, np.zeros((0,), np.int64)
    for lineno, qid, _, _ in rows:
        if qid not in topics:
            raise DataError(path, lineno, f"query id {qid!r} is not in the topics file")
    pos = store.rows([r[2] for r in rows])
    neg = store.rows([r[3] for r in rows])
    for found, column in ((pos, 2), (neg, 3)):
        if (found < 0).any():
            i = int(np.argmax(found < 0))
            raise DataError(
                path, rows[i][0], f"document id {rows[i][column]!r} is not in the collection"
            )
    triples = TrainTriples(
        query=_encode_texts([topics[r[1]] for r in rows], encoder, query_length),
        positive=np.asarray(store.tokens[pos]),
        negative=np.asarray(store.tokens[neg]),
    )
    return triples, np.concatenate([pos, neg])
