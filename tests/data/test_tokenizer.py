"""Tokenizer and Vocabulary behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from capreolus_opt.data.tokenizer import Vocabulary, tokenize


def test_tokenize_lowercases_and_splits_on_non_alphanumerics():
    assert tokenize("Deer-Park, 2024! snake_case  Über") == [
        "deer",
        "park",
        "2024",
        "snake",
        "case",
        "über",
    ]
    assert tokenize("  ...  ") == []


def test_build_orders_by_count_then_alphabet_with_pad_and_unk_first():
    v = Vocabulary.build(["b a c", "a b", "a d"])
    # counts: a=3, b=2, c=1, d=1 (c before d alphabetically)
    assert v.tokens == ["[PAD]", "[UNK]", "a", "b", "c", "d"]
    assert (v.pad_id, v.unk_id) == (0, 1)


def test_min_count_and_max_size():
    texts = ["a a a b b c"]
    assert Vocabulary.build(texts, min_count=2).tokens == ["[PAD]", "[UNK]", "a", "b"]
    assert Vocabulary.build(texts, max_size=3).tokens == ["[PAD]", "[UNK]", "a"]
    with pytest.raises(ValueError, match="min_count.*Received: 0"):
        Vocabulary.build(texts, min_count=0)
    with pytest.raises(ValueError, match="max_size.*Received: 1"):
        Vocabulary.build(texts, max_size=1)


def test_encode_pads_truncates_and_maps_unknown_to_unk():
    v = Vocabulary.build(["the deer runs"])
    ids = {t: i for i, t in enumerate(v.tokens)}
    np.testing.assert_array_equal(
        v.encode("The moose runs", max_length=5), [ids["the"], 1, ids["runs"], 0, 0]
    )
    np.testing.assert_array_equal(v.encode("deer deer deer", max_length=2), [ids["deer"]] * 2)
    batch = v.encode_batch(["deer", ""], max_length=3)
    assert batch.dtype == np.int32 and batch.shape == (2, 3)
    np.testing.assert_array_equal(batch[1], [0, 0, 0])


def test_from_file_keeps_line_order_and_custom_special_ids(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\nfoo\n[UNK]\nbar\n", encoding="utf-8")
    v = Vocabulary.from_file(str(path))
    assert (v.pad_id, v.unk_id, v.token_id("bar"), v.token_id("zzz")) == (0, 2, 3, 2)
    path.write_text("[PAD]\nfoo\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.txt: unk_token='\[UNK\]' is not in"):
        Vocabulary.from_file(str(path))


def test_duplicate_tokens_rejected():
    with pytest.raises(ValueError, match="'a' appears at positions 2 and 3"):
        Vocabulary(tokens=["[PAD]", "[UNK]", "a", "a"])
