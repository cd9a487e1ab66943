"""TSV loader: formats, conversions, vocabulary, and errors naming file:line."""

from __future__ import annotations

import numpy as np
import pytest

from capreolus_opt.data.errors import DataError
from capreolus_opt.data.tsv import TsvRankingData, read_tsv


def _write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_triples_train_and_labelled_eval(tmp_path):
    train = _write(
        tmp_path, "train.tsv", ["red deer\tthe red deer\tblue car", "", "car\tcar\tdeer"]
    )
    ev = _write(tmp_path, "eval.tsv", ["red deer\tdeer here\t2", "car\tmoose\t0", "red deer\tx\t0"])
    data = TsvRankingData(train_path=train, eval_path=ev, max_query_length=3, max_doc_length=4)
    v = data.vocabulary
    # Vocabulary from the training file only: deer=3, car=3, red=2, blue=1, the=1.
    assert v.tokens == ["[PAD]", "[UNK]", "car", "deer", "red", "blue", "the"]
    t = data.train_triples()
    np.testing.assert_array_equal(t.query, [[4, 3, 0], [2, 0, 0]])
    np.testing.assert_array_equal(t.positive, [[6, 4, 3, 0], [2, 0, 0, 0]])
    np.testing.assert_array_equal(t.negative, [[5, 2, 0, 0], [3, 0, 0, 0]])
    e = data.eval_pairs()
    np.testing.assert_array_equal(e.qid, [0, 1, 0])
    np.testing.assert_array_equal(e.label, [2, 0, 0])
    # "here", "moose" and "x" are unknown -> UNK (1).
    np.testing.assert_array_equal(e.document, [[3, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    assert data.vocab_size == 7 and data.pad_id == 0


def test_labelled_train_becomes_pairs_and_triples_eval_becomes_labels(tmp_path):
    train = _write(tmp_path, "train.tsv", ["q\ta\t0", "q\tb\t2", "q\tc\t1", "r\td\t0"])
    ev = _write(tmp_path, "eval.tsv", ["q\ta\tb", "q\tc\ta", "r\ta\tb"])
    data = TsvRankingData(
        train_path=train,
        eval_path=ev,
        train_format="labelled",
        eval_format="triples",
        max_query_length=1,
        max_doc_length=1,
    )
    ids = data.vocabulary.token_id
    t = data.train_triples()
    # Query q, in file order, every (higher label, lower label) pair: (b,a), (b,c), (c,a).
    # Query r has one label only: no pair.
    got = [(int(p[0]), int(n[0])) for p, n in zip(t.positive, t.negative, strict=True)]
    assert got == [(ids("b"), ids("a")), (ids("b"), ids("c")), (ids("c"), ids("a"))]
    e = data.eval_pairs()
    # (q,a) positive in line 1 keeps label 1 although negative in line 2.
    assert [
        (int(q), int(d[0]), int(lab)) for q, d, lab in zip(e.qid, e.document, e.label, strict=True)
    ] == [(0, ids("a"), 1), (0, ids("b"), 0), (0, ids("c"), 1), (1, ids("a"), 1), (1, ids("b"), 0)]


def test_max_pairs_per_query(tmp_path):
    train = _write(tmp_path, "t.tsv", ["q\ta\t1", "q\tb\t0", "q\tc\t0"])
    data = TsvRankingData(
        train_path=train, eval_path=train, train_format="labelled", max_pairs_per_query=1
    )
    assert len(data.train_triples()) == 1


@pytest.mark.parametrize(
    ("fmt", "bad_line", "match"),
    [
        ("labelled", "q\td", "expected 3 tab-separated fields \\(query, document, label\\)"),
        ("labelled", "q\td\trelevant", "expected an integer label >= 0 in field 3"),
        ("labelled", "q\td\t-1", "expected an integer label >= 0"),
        ("triples", "q\tpos\tneg\textra", "expected 3 tab-separated fields \\(query, positive"),
        ("triples", "q\t \tneg", "field 2 of \\(query, positive document, negative document\\) is"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, fmt, bad_line, match):
    good = "q\td\t1" if fmt == "labelled" else "q\tpos\tneg"
    path = _write(tmp_path, "bad.tsv", [good, "", bad_line, good])
    with pytest.raises(ValueError, match=f"bad.tsv:3: {match}"):
        read_tsv(path, fmt=fmt)


def test_empty_file_unknown_format_and_no_pairs(tmp_path):
    empty = _write(tmp_path, "empty.tsv", ["", "  "])
    with pytest.raises(ValueError, match="empty.tsv: no examples"):
        read_tsv(empty, fmt="triples")
    with pytest.raises(ValueError, match="format must be one of .*Received: 'csv'"):
        read_tsv(empty, fmt="csv")
    flat = _write(tmp_path, "flat.tsv", ["q\ta\t1", "q\tb\t1"])
    with pytest.raises(ValueError, match="flat.tsv: no training pairs"):
        TsvRankingData(train_path=flat, eval_path=flat, train_format="labelled")


def test_header_line_is_skipped_and_a_header_alone_is_no_data(tmp_path):
    train = _write(tmp_path, "t.tsv", ["query\tpositive\tnegative", "red deer\tdeer\tcar"])
    ev = _write(tmp_path, "e.tsv", ["Query\tDocument\tLabel", "red deer\tdeer\t1", "red\tcar\t0"])
    data = TsvRankingData(train_path=train, eval_path=ev)
    assert len(data.train_triples()) == 1 and len(data.eval_pairs()) == 2
    assert "query" not in data.vocabulary.tokens
    only = _write(tmp_path, "h.tsv", ["query\tpositive\tnegative"])
    with pytest.raises(DataError, match="h.tsv: no examples after the header line"):
        TsvRankingData(train_path=only, eval_path=ev)
    # Only the first line can be a header: the same words later are data.
    later = _write(tmp_path, "l.tsv", ["a\tb\tc", "query\tpositive\tnegative"])
    assert len(read_tsv(later, fmt="triples")) == 2


def test_eval_file_without_any_positive_is_an_error_not_zero(tmp_path):
    train = _write(tmp_path, "t.tsv", ["red deer\tdeer\tcar"])
    ev = _write(tmp_path, "e.tsv", ["red deer\tdeer\t0", "red\tcar\t0"])
    with pytest.raises(DataError, match="e.tsv: no document has a label > 0: every metric"):
        TsvRankingData(train_path=train, eval_path=ev)


def test_non_utf8_bytes_name_file_and_line(tmp_path):
    path = tmp_path / "latin.tsv"
    path.write_bytes("q\td\t1\nq\tcaf\xe9\t0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.tsv:2: not valid UTF-8 \(byte 0xe9 at column 6\)"):
        read_tsv(str(path), fmt="labelled")
