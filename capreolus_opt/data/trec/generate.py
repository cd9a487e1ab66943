"""A generated TREC-style test collection with planted relevance (no download needed).

Words are pseudo-words built from syllables. Topic ``t`` owns ``words_per_topic`` words; the
rest are background words. Query ``q`` has topic ``q % num_topics`` and 2..5 of its words. Per
query the collection holds 2 documents judged 2 (topic words at density 0.4), 2 judged 1
(density 0.2) and ``docs_per_query - 4`` judged 0 (another topic's words at density 0.4: as
topical as a relevant one, so only the query's own words separate them); ``extra_documents``
unjudged background documents follow. The first-stage run ranks, per query, its judged
documents and ``run_depth - docs_per_query`` random others by query-word overlap plus Gaussian
noise, so it is a mediocre ranking that a reranker can improve. Same arguments => same files.

    python -m capreolus_opt.data.trec.generate DIR [--queries 40] [--extra-documents 0]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from capreolus_opt.records import exit_codes

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def _words(n: int, rng: np.random.Generator) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4)))))
    return sorted(words)


def generate_trec_collection(
    directory: str,
    *,
    num_queries: int = 40,
    docs_per_query: int = 10,
    extra_documents: int = 0,
    num_topics: int = 8,
    words_per_topic: int = 12,
    background_words: int = 400,
    doc_words: tuple[int, int] = (20, 40),
    run_depth: int = 20,
    collection_format: str = "tsv",
    topics_format: str = "tsv",
    seed: int = 0,
) -> dict[str, str]:
    """Writes ``collection``, ``topics``, ``qrels`` and ``run`` files into ``directory``;
    returns their paths by name (see the module docstring)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_words(num_topics * words_per_topic + background_words, rng))
    topic_words = vocab[: num_topics * words_per_topic].reshape(num_topics, words_per_topic)
    background = vocab[num_topics * words_per_topic :]
    os.makedirs(directory, exist_ok=True)
    paths = {
        "collection": os.path.join(directory, f"collection.{collection_format}"),
        "topics": os.path.join(
            directory, "topics.txt" if topics_format == "trec" else "topics.tsv"
        ),
        "qrels": os.path.join(directory, "qrels.txt"),
        "run": os.path.join(directory, "run.txt"),
    }
    queries, judged, texts = {}, {}, []

    def document(topic: int, density: float) -> str:
        n = int(rng.integers(*doc_words))
        own = rng.random(n) < density
        words = np.where(own, rng.choice(topic_words[topic], n), rng.choice(background, n))
        return " ".join(words)

    for q in range(num_queries):
        qid, topic = f"q{q}", q % num_topics
        queries[qid] = " ".join(rng.choice(topic_words[topic], int(rng.integers(2, 6))))
        judged[qid] = {}
        for j in range(docs_per_query):
            rel = 2 if j < 2 else 1 if j < 4 else 0
            other = (topic + int(rng.integers(1, num_topics))) % num_topics
            texts.append(document(topic if rel else other, 0.4 if rel != 1 else 0.2))
            judged[qid][f"d{len(texts) - 1}"] = rel
    for _ in range(extra_documents):
        texts.append(" ".join(rng.choice(background, int(rng.integers(*doc_words)))))
    _write_collection(paths["collection"], texts, collection_format)
    _write_topics(paths["topics"], queries, topics_format)
    with open(paths["qrels"], "w", encoding="utf-8") as f:
        for qid, docs in judged.items():
            f.writelines(f"{qid} 0 {d} {rel}\n" for d, rel in docs.items())
    with open(paths["run"], "w", encoding="utf-8") as f:
        for qid, docs in judged.items():
            pool = list(docs) + [
                f"d{i}" for i in rng.choice(len(texts), run_depth - len(docs), replace=False)
            ]
            pool = list(dict.fromkeys(pool))
            words = set(queries[qid].split())
            scores = [
                sum(w in words for w in texts[int(d[1:])].split()) + rng.normal(0, 1.5)
                for d in pool
            ]
            ranking = sorted(zip(pool, scores, strict=True), key=lambda x: -x[1])
            f.writelines(
                f"{qid} Q0 {d} {r} {s:.4f} overlap\n" for r, (d, s) in enumerate(ranking, 1)
            )
    return paths


def _write_collection(path: str, texts: list[str], fmt: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            if fmt == "jsonl":
                f.write(json.dumps({"id": f"d{i}", "contents": text}) + "\n")
            else:
                f.write(f"d{i}\t{text}\n")


def _write_topics(path: str, queries: dict[str, str], fmt: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for qid, text in queries.items():
            if fmt == "trec":
                f.write(f"<top>\n<num> Number: {qid}\n<title> {text}\n\n<desc> Description:\n")
                f.write(f"Documents about {text}.\n\n<narr> Narrative:\nAny.\n</top>\n\n")
            else:
                f.write(f"{qid}\t{text}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--extra-documents", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = generate_trec_collection(
        args.directory,
        num_queries=args.queries,
        extra_documents=args.extra_documents,
        seed=args.seed,
    )
    print("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return exit_codes.OK


if __name__ == "__main__":
    sys.exit(main())
