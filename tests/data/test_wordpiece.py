"""Host WordPiece tokenizer: ids and pair packing equal to transformers' pure-Python BERT tokenizer.

The reference is ``transformers.models.bert.tokenization_bert_legacy.BertTokenizerLegacy``, a
Python port of Google's ``tokenization.py`` that shares no code with the Rust ``tokenizers``
package our implementation uses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tokenizers")
legacy = pytest.importorskip("transformers.models.bert.tokenization_bert_legacy")

from capreolus_opt.data.tokenizer import Vocabulary  # noqa: E402
from capreolus_opt.data.wordpiece import (  # noqa: E402
    TruncationStats,
    WordPieceTokenizer,
    longest_first_lengths,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [
    "the", "deer", "park", "query", "document", "rank", "##ing", "##s", "re", "##rank", "##er",
    "bert", "Bert", "BERT", "caf", "##e", "##é", "café", "Café", "na", "##ive", "##ïve", "über",
    "uber", "tensor", "##flow", "keras", "2024", "20", "##24", ",", ".", "!", "?", "-", "(", ")",
    "'", "\"", "[", "]", "sep", "SEP", "中", "文", "x", "##x", "a", "##a", "##b", "b",
]  # fmt: skip
TEXTS = [
    "The deer-park, 2024!",
    "Reranking documents with BERT (TensorFlow/Keras).",
    "café Café CAFÉ naïve Über",
    "  multiple\tspaces\n and\u00a0nbsp  ",
    "中文 mixed中文text",
    "unknownword zzz qqq ÿ",
    "a" * 99 + " " + "a" * 100 + " " + "a" * 101,
    "xx xxx xxxxxxxxx ab ba bab",
    "",
    "control\x00chars\x07 and \u200b zero width",
    'quote\'s "double" [sep] literal',
]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(SPECIALS + WORDS) + "\n", encoding="utf-8")
    return str(path)


def reference(vocab_file: str, lowercase: bool, strip_accents: bool | None):
    return legacy.BertTokenizerLegacy(
        vocab_file=vocab_file, do_lower_case=lowercase, strip_accents=strip_accents
    )


@pytest.mark.parametrize(
    "lowercase,strip_accents", [(True, None), (False, None), (True, False), (False, True)]
)
def test_token_ids_equal_reference(vocab_file, lowercase, strip_accents):
    ours = WordPieceTokenizer.from_vocabulary_file(
        vocab_file, lowercase=lowercase, strip_accents=strip_accents
    )
    ref = reference(vocab_file, lowercase, strip_accents)
    long_text = " ".join(TEXTS * 40)
    for text, got in zip(TEXTS + [long_text], ours.tokenize(TEXTS + [long_text]), strict=True):
        assert got == ref.convert_tokens_to_ids(ref.tokenize(text)), text
    # Casing and accents actually matter for this vocabulary (the test is not vacuous).
    assert len({tuple(ours.tokenize(["Café"])[0]), tuple(ours.tokenize(["café"])[0])}) == (
        1 if lowercase else 2
    )


def test_unknown_words_long_words_and_literal_specials(vocab_file):
    tok = WordPieceTokenizer.from_vocabulary_file(vocab_file, lowercase=True)
    unk = tok.unk_id
    assert tok.tokenize(["zzz"]) == [[unk]]
    a99, a100, a101 = tok.tokenize(["a" * 99, "a" * 100, "a" * 101])
    assert unk not in a99 and unk not in a100 and a101 == [unk]
    # Text that spells a special token stays text: no [SEP] id comes from the input.
    (ids,) = tok.tokenize(["[SEP] [CLS]"])
    assert tok.sep_id not in ids and tok.cls_id not in ids


@pytest.mark.parametrize("max_len", [3, 4, 7, 12, 16, 64])
def test_pairs_equal_reference_longest_first(vocab_file, max_len):
    ours = WordPieceTokenizer.from_vocabulary_file(vocab_file, lowercase=True)
    ref = reference(vocab_file, True, None)
    queries = [TEXTS[i % len(TEXTS)] for i in range(len(TEXTS) * 2)]
    documents = [TEXTS[(3 * i + 1) % len(TEXTS)] + " " + TEXTS[i % 5] for i in range(len(queries))]
    features, stats = ours.encode_pairs(queries, documents, max_len)
    for i, (q, d) in enumerate(zip(queries, documents, strict=True)):
        want = ref(
            q,
            d,
            truncation="longest_first",
            max_length=max_len,
            padding="max_length",
            return_token_type_ids=True,
        )
        np.testing.assert_array_equal(features["token_ids"][i], want["input_ids"], err_msg=q)
        np.testing.assert_array_equal(features["segment_ids"][i], want["token_type_ids"])
        np.testing.assert_array_equal(features["padding_mask"][i], want["attention_mask"])
    assert {k: v.dtype for k, v in features.items()} == {
        "token_ids": np.int32, "segment_ids": np.int32, "padding_mask": np.int32
    }  # fmt: skip
    nq = [len(x) for x in ours.tokenize(queries)]
    nd = [len(x) for x in ours.tokenize(documents)]
    kept = features["padding_mask"].sum() - 3 * len(queries)
    assert stats.query_tokens == sum(nq) and stats.document_tokens == sum(nd)
    assert stats.query_tokens_kept + stats.document_tokens_kept == kept


def test_truncation_stats_by_hand(vocab_file):
    tok = WordPieceTokenizer.from_vocabulary_file(vocab_file, lowercase=True)
    # query 2 tokens, document 6 tokens, budget 8 - 3 = 5: the document loses 3.
    _, stats = tok.encode_pairs(["deer park"], ["the the the the the the"], 8)
    assert stats == TruncationStats(1, 0, 1, 2, 2, 6, 3)
    d = stats.to_dict()
    assert d["documents_truncated_fraction"] == 1.0 and d["queries_truncated_fraction"] == 0.0
    assert d["document_tokens_cut_fraction"] == pytest.approx(0.5)
    assert (stats + stats).pairs == 2
    # Equal lengths, odd budget: the document loses the extra token (transformers' rule).
    np.testing.assert_array_equal(
        longest_first_lengths([10, 12, 1], [10, 10, 30], 9), ([5, 5, 1], [4, 4, 8])
    )


def test_encode_batch_is_a_vocabulary_drop_in(vocab_file):
    tok = WordPieceTokenizer.from_vocabulary_file(vocab_file, lowercase=True)
    out = tok.encode_batch(["Reranking documents", ""], max_length=4)
    want = [tok.vocabulary.token_id(t) for t in ("re", "##rank", "##ing", "document")]
    np.testing.assert_array_equal(out, [want, [0, 0, 0, 0]])
    assert out.dtype == np.int32
    again, lengths = tok.encode_batch_with_lengths(["Reranking documents", ""], max_length=4)
    np.testing.assert_array_equal(again, out)
    np.testing.assert_array_equal(lengths, [5, 0])  # re ##rank ##ing document ##s: 1 cut
    assert len(tok) == tok.vocab_size == len(SPECIALS) + len(WORDS) and tok.pad_id == 0


def test_preset_folder_round_trip_and_errors(tmp_path, vocab_file):
    tok = WordPieceTokenizer.from_vocabulary_file(vocab_file, lowercase=False)
    tok.save_to_preset(str(tmp_path / "p"))
    again = WordPieceTokenizer.from_preset(str(tmp_path / "p"))
    assert again.vocabulary.tokens == tok.vocabulary.tokens
    assert (again.lowercase, again.strip_accents) == (False, False)
    assert again.tokenize(TEXTS) == tok.tokenize(TEXTS)
    config = json.loads((tmp_path / "p" / "tokenizer.json").read_text())
    assert config["registered_name"] == "keras_hub>BertTokenizer"
    with pytest.raises(ValueError, match="is not a folder"):
        WordPieceTokenizer.from_preset(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="carries no vocabulary"):
        WordPieceTokenizer.from_preset(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match=r"missing \['\[CLS\]', '\[SEP\]'\]"):
        WordPieceTokenizer(Vocabulary(tokens=["[PAD]", "[UNK]", "x"]), lowercase=True)
    with pytest.raises(ValueError, match="max_len must be an int >= 3. Received: 2"):
        tok.encode_pairs(["a"], ["b"], 2)
    with pytest.raises(ValueError, match="must align; got 1 and 2"):
        tok.encode_pairs(["a"], ["b", "c"], 8)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        tok.tokenize(["a", None])
