"""TrecRerankingData on generated collections: label rules, folds, cache, triples, BM25, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from capreolus_opt.data.errors import DataError
from capreolus_opt.data.trec import data as trec_data
from capreolus_opt.data.trec.data import TrecRerankingData
from capreolus_opt.data.trec.generate import generate_trec_collection


@pytest.fixture(autouse=True)
def _fresh_memo():
    trec_data._MEMO.clear()
    yield
    trec_data._MEMO.clear()


def _write_tiny(tmp_path):
    """Six one-word documents, so a token id tells which document a row holds."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    (tmp_path / "c.tsv").write_text("".join(f"d{i}\t{w}\n" for i, w in enumerate(words)))
    (tmp_path / "t.tsv").write_text("q1\talpha bravo\nq2\tdelta\nq3\tfoxtrot\n")
    # q1: d0 rel 2, d1 rel 0, d2 unjudged; q2: d3 rel 1, d4 rel 0; q3: d5 rel 1, d0 rel 0
    (tmp_path / "q.txt").write_text(
        "q1 0 d0 2\nq1 0 d1 0\nq2 0 d3 1\nq2 0 d4 0\nq3 0 d5 1\nq3 0 d0 0\n"
    )
    run = ["q1 Q0 d1 1 9 r", "q1 Q0 d0 2 8 r", "q1 Q0 d2 3 7 r", "q1 Q0 d5 4 1 r"]
    run += ["q2 Q0 d4 1 5 r", "q2 Q0 d3 2 4 r", "q3 Q0 d0 1 3 r", "q3 Q0 d5 2 2 r"]
    (tmp_path / "r.txt").write_text("\n".join(run) + "\n")
    (tmp_path / "f.json").write_text(json.dumps({"train": ["q1"], "dev": ["q2"], "test": ["q3"]}))


def _tiny(tmp_path, **overrides):
    """TrecRerankingData over the tiny files (written on first use only: rewriting them would
    change their mtime and so the cache key)."""
    if not (tmp_path / "c.tsv").exists():
        _write_tiny(tmp_path)
    args = dict(
        collection=str(tmp_path / "c.tsv"),
        topics=str(tmp_path / "t.tsv"),
        qrels=str(tmp_path / "q.txt"),
        first_stage_run=str(tmp_path / "r.txt"),
        folds=str(tmp_path / "f.json"),
        top_k=3,
        samples_per_query=8,
        max_query_length=4,
        max_doc_length=2,
        cache_dir=str(tmp_path / "cache"),
    )
    args.update(overrides)
    return TrecRerankingData(**args)


def _doc_word(data, ids):
    return [data.encoder.tokens[int(i)] for i in ids]


def test_label_rules_candidates_and_triples(tmp_path):
    data = _tiny(tmp_path)
    # top_k=3 keeps q1's three best candidates (d5 at score 1 is dropped).
    index = data.eval_index()
    assert list(index.split) == ["dev", "dev", "test", "test"]
    assert index.qid == ["q2", "q2", "q3", "q3"] and index.docid == ["d4", "d3", "d0", "d5"]
    np.testing.assert_array_equal(index.first_stage_score, [5, 4, 3, 2])
    pairs = data.eval_pairs()
    np.testing.assert_array_equal(pairs.label, [0, 1, 0, 1])
    assert _doc_word(data, pairs.document[:, 0]) == ["echo", "delta", "alpha", "foxtrot"]
    np.testing.assert_array_equal(pairs.qid, [0, 0, 1, 1])
    # Training: q1's relevant candidate is d0; non-relevant: d1 (judged 0) and d2 (unjudged).
    t = data.train_triples()
    assert len(t) == 8
    assert set(_doc_word(data, t.positive[:, 0])) == {"alpha"}
    assert set(_doc_word(data, t.negative[:, 0])) == {"bravo", "charlie"}
    assert set(_doc_word(data, t.query[:, 0])) == {"alpha"}


def test_triples_are_seeded(tmp_path):
    a = _tiny(tmp_path, samples_per_query=32).train_triples()
    trec_data._MEMO.clear()
    b = _tiny(tmp_path, samples_per_query=32).train_triples()
    trec_data._MEMO.clear()
    c = _tiny(tmp_path, samples_per_query=32, seed=1).train_triples()
    np.testing.assert_array_equal(a.negative, b.negative)
    assert not np.array_equal(a.negative, c.negative)


def test_formats_give_the_same_data(tmp_path):
    tsv = generate_trec_collection(str(tmp_path / "a"), num_queries=12, seed=3)
    other = generate_trec_collection(
        str(tmp_path / "b"), num_queries=12, seed=3, collection_format="jsonl", topics_format="trec"
    )
    made = []
    for paths in (tsv, other):
        trec_data._MEMO.clear()
        made.append(
            TrecRerankingData(
                collection=paths["collection"], topics=paths["topics"], qrels=paths["qrels"],
                first_stage_run=paths["run"], top_k=10, cache_dir=str(tmp_path / "cache"),
            )
        )  # fmt: skip
    a, b = made
    assert a.encoder.tokens == b.encoder.tokens
    for field in ("query", "document", "label", "qid"):
        np.testing.assert_array_equal(
            getattr(a.eval_pairs(), field), getattr(b.eval_pairs(), field)
        )
    np.testing.assert_array_equal(a.train_triples().positive, b.train_triples().positive)


def test_seeded_split_without_folds(tmp_path):
    paths = generate_trec_collection(str(tmp_path / "c"), num_queries=20, seed=0)
    common = dict(
        collection=paths["collection"], topics=paths["topics"], qrels=paths["qrels"],
        first_stage_run=paths["run"], cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    folds = TrecRerankingData(**common, seed=5).folds
    assert [len(folds[s]) for s in ("train", "dev", "test")] == [16, 2, 2]
    assert sorted(sum(folds.values(), [])) == sorted(f"q{i}" for i in range(20))
    trec_data._MEMO.clear()
    assert TrecRerankingData(**common, seed=5).folds == folds
    trec_data._MEMO.clear()
    assert TrecRerankingData(**common, seed=6).folds != folds


def test_tokenised_collection_is_cached_and_invalidated(tmp_path):
    data = _tiny(tmp_path)
    assert data._loaded.store.from_cache is False
    trec_data._MEMO.clear()
    again = _tiny(tmp_path)
    assert again._loaded.store.from_cache is True
    np.testing.assert_array_equal(again.eval_pairs().document, data.eval_pairs().document)
    trec_data._MEMO.clear()
    # Rewriting the collection (new size/mtime) must not reuse stale token ids.
    with open(tmp_path / "c.tsv", "a") as f:
        f.write("d6\tgolf\n")
    assert _tiny(tmp_path)._loaded.store.from_cache is False


def test_msmarco_triples_by_id_and_by_text(tmp_path):
    (tmp_path / "ids.tsv").write_text("q2\td3\td4\nq1\td0\td2\n")
    data = _tiny(tmp_path, train_triples=str(tmp_path / "ids.tsv"))
    t = data.train_triples()
    assert _doc_word(data, t.positive[:, 0]) == ["delta", "alpha"]
    assert _doc_word(data, t.negative[:, 0]) == ["echo", "charlie"]
    assert _doc_word(data, t.query[:, 0]) == ["delta", "alpha"]
    trec_data._MEMO.clear()
    (tmp_path / "text.tsv").write_text("echo delta\tfoxtrot\talpha\n")
    data = _tiny(tmp_path, train_triples=str(tmp_path / "text.tsv"), triples_format="text")
    t = data.train_triples()
    assert (_doc_word(data, t.query[0, :2]), _doc_word(data, t.positive[0, :1])) == (
        ["echo", "delta"],
        ["foxtrot"],
    )
    trec_data._MEMO.clear()
    (tmp_path / "bad.tsv").write_text("q2\td3\td4\nq2\td3\tnope\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: document id 'nope' is not in the collection"):
        _tiny(tmp_path, train_triples=str(tmp_path / "bad.tsv")).validate_inputs()
    (tmp_path / "badq.tsv").write_text("q9\td3\td4\n")
    with pytest.raises(DataError, match=r"badq.tsv:1: query id 'q9' is not in the topics"):
        _tiny(tmp_path, train_triples=str(tmp_path / "badq.tsv")).validate_inputs()


def test_bm25_builds_the_first_stage_run(tmp_path):
    paths = generate_trec_collection(str(tmp_path / "c"), num_queries=16, seed=1)
    data = TrecRerankingData(
        collection=paths["collection"], topics=paths["topics"], qrels=paths["qrels"],
        top_k=10, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    index = data.eval_index()
    labels = data.eval_pairs().label
    # BM25 over planted topic words puts most relevant documents into each top 10.
    assert len(index.qid) > 0 and labels.mean() > 0.2
    scores = index.first_stage_score
    for qid in set(index.qid):
        own = scores[[q == qid for q in index.qid]]
        assert (np.diff(own) <= 0).all() and (own > 0).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("f.json", '{"train": ["q1"], "dev": ["q2"], "test": ["q7"]}'), "not in the topics file"),
        (("q.txt", "q1 0 d0 2\nq2 0 d3 0\nq3 0 d5 1\n"), "no dev query has a relevant"),
        (("q.txt", "q1 0 d0 2\nq1 0 d1 1\nq1 0 d2 1\nq2 0 d3 1\nq3 0 d5 1\n"), "no train query"),
        (
            (
                "r.txt",
                "q1 Q0 d0 1 2 r\nq1 Q0 d1 2 1 r\nq2 Q0 d3 1 2 r\nq3 Q0 zz 1 1 r\nq3 Q0 d5 2 0 r\n",
            ),
            r"r.txt: 1 candidates of query 'q3' .* e.g. 'zz'",
        ),
        (("c.tsv", "d0\talpha\nd1\tb\nd2\tc\nd3\td\nd4\te\nd1\tf\nd5\tg\n"), "c.tsv:6: document"),
    ],
)
def test_inconsistent_inputs_are_data_errors(tmp_path, change, message):
    _write_tiny(tmp_path)
    name, text = change
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=message):
        _tiny(tmp_path).validate_inputs()


def test_truncation_stats_and_warning(tmp_path, caplog):
    paths = generate_trec_collection(str(tmp_path / "c"), num_queries=8, seed=0)
    with caplog.at_level(logging.WARNING, logger="capreolus_opt.data.trec.data"):
        data = TrecRerankingData(
            collection=paths["collection"], topics=paths["topics"], qrels=paths["qrels"],
            first_stage_run=paths["run"], max_doc_length=10, max_query_length=3,
            cache_dir=str(tmp_path / "cache"),
        )  # fmt: skip
        stats = data.truncation_stats()
    # Generated documents have 20-39 words and queries 2-5: all documents are cut at 10.
    assert stats["documents_truncated"] == 1.0
    topics = Path(paths["topics"]).read_text().splitlines()
    lengths = [len(line.split("\t")[1].split()) for line in topics]
    assert stats["queries_truncated"] == np.mean(np.array(lengths) > 3)
    assert stats["document_length_p50"] >= 20
    text = caplog.text
    assert "100.0% of documents are longer than max_doc_length=10" in text
    assert ("of queries are longer" in text) == (np.mean(np.array(lengths) > 3) > 0.05)


def test_bundled_smoke_collection_is_what_the_generator_makes(tmp_path):
    root = Path(__file__).resolve().parents[2] / "gin_configs" / "data" / "trec_smoke"
    paths = generate_trec_collection(str(tmp_path), num_queries=24, seed=0)
    for name, path in paths.items():
        assert Path(path).read_bytes() == (root / Path(path).name).read_bytes(), name
    folds = json.loads((root / "folds.json").read_text())
    assert sorted(sum(folds.values(), []), key=lambda q: int(q[1:])) == [f"q{i}" for i in range(24)]
