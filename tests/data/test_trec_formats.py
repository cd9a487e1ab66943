"""TREC file readers: what each format accepts, and every malformed line named FILE:LINE."""

from __future__ import annotations

import json

import pytest

from capreolus_opt.data.errors import DataError, read_lines
from capreolus_opt.data.trec.formats import (
    iter_collection,
    read_folds,
    read_qrels,
    read_run,
    read_topics,
    read_triples,
)


def _write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_collection_tsv_and_jsonl_layouts(tmp_path):
    tsv = _write(tmp_path, "c.tsv", "d1\tred deer\n\nd2\tblue\tcar\n")
    assert list(iter_collection(tsv)) == [(1, "d1", "red deer"), (3, "d2", "blue car")]
    jsonl = _write(
        tmp_path,
        "c.jsonl",
        json.dumps({"id": "d1", "contents": "red deer"})
        + "\n"
        + json.dumps({"_id": 7, "title": "Deer", "text": "park"})
        + "\n",
    )
    assert list(iter_collection(jsonl)) == [(1, "d1", "red deer"), (2, "7", "Deer park")]


def test_topics_tsv_and_trec_topic_file(tmp_path):
    tsv = _write(tmp_path, "t.tsv", "301\tdeer parks\n302\tred cars\n")
    assert read_topics(tsv) == {"301": "deer parks", "302": "red cars"}
    trec = _write(
        tmp_path,
        "t.txt",
        "<top>\n<num> Number: 301\n<title> deer parks\n\n<desc> Description:\nWhere do deer\n"
        "live?\n<narr> Narrative:\nAny park.\n</top>\n\n<top>\n<num> Number: 302 \n"
        "<title>red cars\n<desc> Description:\nCars.\n</top>\n",
    )
    assert read_topics(trec) == {"301": "deer parks", "302": "red cars"}
    assert read_topics(trec, topic_field="desc") == {"301": "Where do deer live?", "302": "Cars."}


def test_qrels_run_folds_triples(tmp_path):
    qrels = _write(tmp_path, "q.txt", "1 0 d1 2\n1 0 d2 0\n2 Q0 d3 -1\n")
    assert read_qrels(qrels) == {"1": {"d1": 2, "d2": 0}, "2": {"d3": -1}}
    run = _write(tmp_path, "r.txt", "1 Q0 d1 1 3.5 bm25\n1 Q0 d2 2 1e-3 bm25\n")
    assert read_run(run) == {"1": {"d1": 3.5, "d2": 0.001}}
    folds = _write(tmp_path, "f.json", json.dumps({"train": [1], "dev": ["2"], "test": ["3"]}))
    assert read_folds(folds) == {"train": ["1"], "dev": ["2"], "test": ["3"]}
    triples = _write(tmp_path, "t.tsv", "1\td1\td2\n")
    assert read_triples(triples) == [(1, "1", "d1", "d2")]


BAD = [
    (iter_collection, "c.tsv", "d1\tok\nno tab here\n", 2, "expected docid<TAB>text"),
    (iter_collection, "c.jsonl", '{"id": "d1", "contents": "x"}\n{"id": "d2"\n', 2, "JSON"),
    (iter_collection, "c.jsonl", '{"id": "d1", "contents": "x"}\n{"id": "d2"}\n', 2, "text field"),
    (iter_collection, "c.jsonl", '{"contents": "x"}\n', 1, "no document id"),
    (iter_collection, "c.jsonl", "[1, 2]\n", 1, "expected a JSON object"),
    (read_topics, "t.tsv", "1\tdeer\n2\n", 2, "expected qid<TAB>query text"),
    (read_topics, "t.tsv", "1\tdeer\n1\tcar\n", 2, "appears twice"),
    (read_topics, "t.txt", "<top>\n<title> x\n</top>\n", 1, "topic without <num>"),
    (read_qrels, "q.txt", "1 0 d1 1\n1 0 d2\n", 2, "expected 4 fields"),
    (read_qrels, "q.txt", "1 0 d1 yes\n", 1, "not an integer"),
    (read_run, "r.txt", "1 Q0 d1 1 2.0 t\n1 Q0 d2 2 t\n", 2, "expected 6 fields"),
    (read_run, "r.txt", "1 Q0 d1 1 high t\n", 1, "not a number"),
    (read_run, "r.txt", "1 Q0 d1 1 nan t\n", 1, "NaN"),
    (read_run, "r.txt", "1 Q0 d1 1 2 t\n1 Q0 d1 2 1 t\n", 2, "appears twice"),
    (read_triples, "t.tsv", "q\tp\tn\nq\tp\n", 2, "expected 3 non-empty"),
    (read_triples, "t.tsv", "q\tp\t \n", 1, "expected 3 non-empty"),
]


@pytest.mark.parametrize(("reader", "name", "text", "line", "message"), BAD)
def test_malformed_lines_name_file_and_line(tmp_path, reader, name, text, line, message):
    path = _write(tmp_path, name, text)
    with pytest.raises(DataError, match=message) as info:
        list(reader(path)) if reader is iter_collection else reader(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert (info.value.path, info.value.line) == (path, line)


@pytest.mark.parametrize(
    ("reader", "good"),
    [
        (iter_collection, "1\tok"),
        (read_topics, "1\tok"),
        (read_qrels, "1 0 d1 1"),
        (read_run, "1 Q0 d1 1 2.0 t"),
    ],
)
def test_empty_and_non_utf8_files(tmp_path, reader, good):
    empty = _write(tmp_path, "empty.txt", "\n\n")
    with pytest.raises(DataError, match=f"^{empty}: no "):
        list(reader(empty)) if reader is iter_collection else reader(empty)
    latin = _write(tmp_path, "latin.txt", f"{good}\n2\tcaf\xe9\n".encode("latin-1"), mode="wb")
    with pytest.raises(DataError, match=f"^{latin}:2: not valid UTF-8 \\(byte 0xe9 at column 6\\)"):
        list(reader(latin)) if reader is iter_collection else reader(latin)


@pytest.mark.parametrize(
    ("folds", "message"),
    [
        ({"train": ["1"], "dev": ["2"]}, "expected an object with keys"),
        ({"train": ["1"], "dev": [], "test": ["3"]}, "'dev' must be a non-empty list"),
        ({"train": ["1"], "dev": ["1"], "test": ["3"]}, "query '1' is in both 'train' and 'dev'"),
    ],
)
def test_bad_folds(tmp_path, folds, message):
    path = _write(tmp_path, "f.json", json.dumps(folds))
    with pytest.raises(DataError, match=message):
        read_folds(path)
    broken = _write(tmp_path, "g.json", '{"train": [1],\n "dev": [2,\n')
    with pytest.raises(DataError, match=f"^{broken}:3: not valid JSON"):
        read_folds(broken)


def test_missing_file_and_bom(tmp_path):
    with pytest.raises(DataError, match="nope.tsv: cannot be read"):
        list(read_lines(str(tmp_path / "nope.tsv")))
    bom = _write(tmp_path, "bom.tsv", "\ufeff1\tdeer\n")
    assert read_topics(bom) == {"1": "deer"}


@pytest.mark.parametrize(("module", "kind"), [("gzip", "gzip"), ("bz2", "bzip2"), ("lzma", "xz")])
@pytest.mark.parametrize("reader", ["qrels", "run", "topics", "collection", "tsv", "folds"])
def test_compressed_input_is_named_not_reported_as_bad_utf8(tmp_path, module, kind, reader):
    import importlib

    from capreolus_opt.data.trec import formats
    from capreolus_opt.data.tsv import read_tsv

    text = {"folds": json.dumps({"train": ["1"], "dev": ["2"], "test": ["3"]})}.get(
        reader, "q1\tQ0\td1\t1\n"
    )
    path = tmp_path / f"input.{module}"
    path.write_bytes(importlib.import_module(module).compress(text.encode()))
    call = {
        "qrels": formats.read_qrels, "run": formats.read_run, "topics": formats.read_topics,
        "collection": lambda p: list(formats.iter_collection(p)),
        "tsv": lambda p: read_tsv(p, fmt="triples"), "folds": formats.read_folds,
    }[reader]  # fmt: skip
    with pytest.raises(DataError, match=f"^{path}: {kind}-compressed, expected plain text"):
        call(str(path))
