"""A BM25 first-stage run over a collection with ``bm25s`` (used when no run file is given).

Documents and queries are tokenised with ``tokenizer.tokenize`` (lowercased alphanumeric runs, no
stemming or stopwords), indexed with Lucene's BM25 variant (``k1``, ``b``; Anserini's MS MARCO
defaults 0.9 / 0.4) and the top ``k`` documents with a score > 0 form each query's ranking. The
whole collection is tokenised in memory for indexing: for collections of millions of documents,
give a first-stage run instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from capreolus_opt.data.tokenizer import tokenize
from capreolus_opt.data.trec.formats import iter_collection


def bm25_run(
    collection: str,
    queries: Mapping[str, str],
    qids: Sequence[str],
    *,
    k: int,
    k1: float = 0.9,
    b: float = 0.4,
) -> dict[str, dict[str, float]]:
    """``{qid: {docid: BM25 score}}`` for ``qids`` (texts from ``queries``), top ``k`` each."""
    from capreolus_opt.optional import require

    bm25s = require("bm25s", "trec")  # imported only when a run has to be built

    docids: list[str] = []
    corpus: list[list[str]] = []
    for _, docid, text in iter_collection(collection):
        docids.append(docid)
        corpus.append(tokenize(text))
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(corpus, show_progress=False)
    del corpus
    qids = list(qids)
    query_tokens = [tokenize(queries[q]) or ["[empty]"] for q in qids]
    depth = min(k, len(docids))
    results, scores = retriever.retrieve(query_tokens, k=depth, show_progress=False, n_threads=1)
    run: dict[str, dict[str, float]] = {}
    for qid, rows, values in zip(qids, results, scores, strict=True):
        run[qid] = {docids[r]: float(s) for r, s in zip(rows, values, strict=True) if s > 0}
    return run
