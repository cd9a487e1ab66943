"""keras_hub BERT reranker (extra `hub`): packing, variable paths, layer-wise groups, presets,
`.keras` save and reload."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from capreolus_opt import AdamMultilr  # noqa: E402
from capreolus_opt.data.synthetic import SyntheticRankingData  # noqa: E402
from capreolus_opt.data.wordpiece import WordPieceTokenizer  # noqa: E402
from capreolus_opt.models.bert import (  # noqa: E402
    BertPairPacker,
    bert_reranker_builder,
    build_bert_reranker,
    load_bert_reranker,
    tokenizer_from_model,
)
from capreolus_opt.models.layerwise import layerwise_decay_pattern_lrs  # noqa: E402
from capreolus_opt.models.reranker import RerankingTask  # noqa: E402
from capreolus_opt.models.saved_reranker import compiled_scorer  # noqa: E402
from tests.bert_presets import make_tiny_preset  # noqa: E402

TINY = dict(num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, dropout=0.0)


def test_packer_moves_padding_to_the_end():
    out = BertPairPacker(cls_id=8, sep_id=9, pad_id=0)(
        np.array([[3, 4, 0], [5, 0, 0]], np.int32), np.array([[6, 0, 0, 0], [7, 7, 7, 7]], np.int32)
    )
    np.testing.assert_array_equal(
        out["token_ids"], [[8, 3, 4, 9, 6, 9, 0, 0, 0, 0], [8, 5, 9, 7, 7, 7, 7, 9, 0, 0]]
    )
    np.testing.assert_array_equal(
        out["segment_ids"], [[0, 0, 0, 0, 1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]]
    )
    np.testing.assert_array_equal(out["padding_mask"], np.asarray(out["token_ids"]) != 0)


def test_layerwise_patterns_cover_every_bert_variable_once():
    keras.utils.set_random_seed(0)
    model = build_bert_reranker(vocab_size=20, query_length=3, document_length=4, **TINY)
    groups = layerwise_decay_pattern_lrs(base_lr=1e-3, decay=0.5, num_layers=2)
    for v in model.trainable_variables:
        hits = [g["name"] for g in groups if any(re.search(p, v.path) for p in g["patterns"])]
        assert len(hits) == 1, (v.path, hits)
    opt = AdamMultilr(learning_rate=1e-3, pattern_lrs=groups, strict=True)
    opt.build(model.trainable_variables)
    lr_of = {row.variable: row.lr for row in opt.group_table().rows}
    assert lr_of["head/kernel"] == pytest.approx(1e-3)
    assert lr_of["pooled_dense/kernel"] == pytest.approx(1e-3)
    assert lr_of["transformer_layer_1/self_attention_layer/query/kernel"] == pytest.approx(5e-4)
    assert lr_of["transformer_layer_0/feedforward_output_dense/bias"] == pytest.approx(2.5e-4)
    assert lr_of["token_embedding/embeddings"] == pytest.approx(1.25e-4)
    assert lr_of["embeddings_layer_norm/gamma"] == pytest.approx(1.25e-4)
    assert opt.variables_by_group()["default"] == []


def test_task_with_bert_builder_and_special_ids():
    data = SyntheticRankingData(seed=0, vocab_size=300, num_train_triples=64, num_eval_queries=4)
    task = RerankingTask(data=data, model_builder=bert_reranker_builder(**TINY), loss="softmax")
    model = task.build_model()
    # [CLS] and [SEP] appended after the data's 300 ids.
    (backbone,) = [x for x in model.layers if isinstance(x, keras_hub.models.BertBackbone)]
    assert backbone.vocabulary_size == 302
    batch = next(iter(task.train_dataset(4, seed=0)))
    loss = task.per_example_loss(model, batch, training=True)
    assert loss.shape == (4,) and np.isfinite(loss.numpy()).all()


QUERIES = ["deer park", "reranking keras", "keras bert query"]
DOCS = ["the deer park of the x", "a document", "relevant 123 ranking keras keras keras"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return str(make_tiny_preset(tmp_path_factory.mktemp("bert") / "preset", max_sequence_length=16))


def test_preset_folder_reloads_identical_weights_and_its_vocabulary(preset):
    tokenizer = WordPieceTokenizer.from_preset(preset)
    saved = keras_hub.models.BertBackbone.from_preset(preset)
    model = build_bert_reranker(
        vocab_size=len(tokenizer), query_length=3, document_length=4, preset=preset
    )
    packer = model.get_layer("packer")
    assert (packer.cls_id, packer.sep_id, packer.pad_id) == (2, 3, 0)
    assert packer.vocabulary_tokens == tokenizer.vocabulary.tokens
    loaded = {v.path: v.numpy() for v in model.weights}
    assert len(saved.weights) == len(loaded) - 1  # + head/kernel
    for v in saved.weights:
        np.testing.assert_array_equal(loaded[v.path], v.numpy(), err_msg=v.path)
    # The preset's tokenizer.json (keras_hub BertTokenizer) said lowercase=True.
    assert tokenizer.lowercase and tokenizer.tokenize(["DEER"]) == tokenizer.tokenize(["deer"])


def test_preset_errors_name_the_problem(preset, tmp_path):
    n = len(WordPieceTokenizer.from_preset(preset))
    with pytest.raises(ValueError, match="exceeds the preset's max_sequence_length=16"):
        build_bert_reranker(vocab_size=n, query_length=8, document_length=8, preset=preset)
    with pytest.raises(
        ValueError, match=f"vocabulary \\(300 ids, PAD 0\\) is not the preset's \\({n}"
    ):
        build_bert_reranker(vocab_size=300, query_length=3, document_length=4, preset=preset)
    with pytest.raises(ValueError, match="not a folder"):
        build_bert_reranker(
            vocab_size=n, query_length=3, document_length=4, preset=str(tmp_path / "missing")
        )
    with pytest.raises(ValueError, match="could not load it as a hub name: Unknown preset"):
        build_bert_reranker(vocab_size=n, query_length=3, document_length=4, preset="no_such")
    # A vocabulary longer than the backbone's embedding table.
    bigger = tmp_path / "bigger"
    shutil.copytree(preset, bigger)
    with open(bigger / "assets" / "tokenizer" / "vocabulary.txt", "a") as f:
        f.write("extra1\nextra2\n")
    with pytest.raises(ValueError, match=f"has {n + 2} tokens but the backbone embeds only {n}"):
        build_bert_reranker(vocab_size=n + 2, query_length=3, document_length=4, preset=str(bigger))


def test_host_packed_pairs_score_like_graph_packed_ids(preset):
    tokenizer = WordPieceTokenizer.from_preset(preset)
    n = len(tokenizer)
    by_ids = build_bert_reranker(vocab_size=n, query_length=4, document_length=9, preset=preset)
    by_pairs = build_bert_reranker(
        vocab_size=n, preset=preset, pair_inputs=True, sequence_length=16
    )
    # The backbones come from the preset; only the fresh heads differ.
    by_pairs.get_layer("head").set_weights(by_ids.get_layer("head").get_weights())
    features, stats = tokenizer.encode_pairs(QUERIES, DOCS, 16)
    assert stats.queries_truncated == stats.documents_truncated == 0
    assert max(map(len, tokenizer.tokenize(QUERIES))) == 4  # nothing cut by encode_batch either
    assert max(map(len, tokenizer.tokenize(DOCS))) == 9
    want = by_ids(
        {
            "query": tokenizer.encode_batch(QUERIES, max_length=4),
            "document": tokenizer.encode_batch(DOCS, max_length=9),
        }
    )
    np.testing.assert_allclose(by_pairs(features), want, rtol=1e-5, atol=1e-6)
    packed = by_ids.get_layer("packer")(
        tokenizer.encode_batch(QUERIES, max_length=4), tokenizer.encode_batch(DOCS, max_length=9)
    )
    np.testing.assert_array_equal(packed["token_ids"], features["token_ids"])
    np.testing.assert_array_equal(packed["segment_ids"], features["segment_ids"])


@pytest.mark.slow
@pytest.mark.parametrize("pair_inputs", [False, True])
def test_trained_model_saves_and_reloads_completely(preset, tmp_path, pair_inputs):
    tokenizer = WordPieceTokenizer.from_preset(preset)
    keras.utils.set_random_seed(1)
    if pair_inputs:
        model = build_bert_reranker(
            vocab_size=len(tokenizer), preset=preset, pair_inputs=True, sequence_length=16
        )
        features = tokenizer.encode_pairs(QUERIES, DOCS, 16).features
    else:
        model = build_bert_reranker(
            vocab_size=len(tokenizer), query_length=4, document_length=9, preset=preset
        )
        features = {
            "query": tokenizer.encode_batch(QUERIES, max_length=4),
            "document": tokenizer.encode_batch(DOCS, max_length=9),
        }
    before = {v.path: v.numpy() for v in model.weights}
    opt = AdamMultilr(
        learning_rate=2e-5, pattern_lrs=[{"name": "head", "patterns": ["^head/"], "lr": 1e-2}]
    )
    target = np.array([1.0, -1.0, 0.5], np.float32)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = ops.mean((model(features, training=True) - target) ** 2)
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    trained = {v.path: v.numpy() for v in model.weights}
    assert not np.array_equal(trained["head/kernel"], before["head/kernel"])
    path = str(tmp_path / "reranker.keras")
    model.save(path)
    reloaded = load_bert_reranker(path)
    got = {v.path: v.numpy() for v in reloaded.weights}
    assert got.keys() == trained.keys() and len(got) == len(model.weights)
    for name, value in trained.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    np.testing.assert_array_equal(reloaded(features), model(features))
    again = tokenizer_from_model(reloaded)
    assert again.vocabulary.tokens == tokenizer.vocabulary.tokens
    assert again.get_config() == tokenizer.get_config()
    assert again.tokenize(QUERIES + DOCS) == tokenizer.tokenize(QUERIES + DOCS)


def test_random_model_has_no_tokenizer_and_still_reloads(tmp_path):
    model = build_bert_reranker(vocab_size=20, query_length=3, document_length=4, **TINY)
    assert tokenizer_from_model(model) is None
    model.save(str(tmp_path / "m.keras"))
    reloaded = load_bert_reranker(str(tmp_path / "m.keras"))
    for a, b in zip(model.weights, reloaded.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_under_mixed_float16_the_scores_stay_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_bert_reranker(vocab_size=20, query_length=3, document_length=4, **TINY)
        rng = np.random.default_rng(3)
        query = rng.integers(1, 20, (6, 3)).astype(np.int32)
        document = rng.integers(1, 20, (6, 4)).astype(np.int32)
        scores = model({"query": query, "document": document})
        # The encoder runs in float16; the head and what follows it do not.
        assert model.get_layer("head").compute_dtype == "float32"
        backbone = [la for la in model.layers if la.name.startswith("bert_backbone")]
        assert [la.compute_dtype for la in backbone] == ["float16"]
        assert scores.dtype == "float32" and scores.shape == (6,)
        assert np.all(np.isfinite(np.asarray(scores)))
        # rerank's XLA-compiled scorer runs the same float16 encoder (float16 rounding apart).
        compiled = compiled_scorer(model, 3, 4)(query, document)
        assert compiled.dtype == "float32"
        np.testing.assert_allclose(compiled, model({"query": query, "document": document},
                                                   training=False), rtol=0, atol=2e-3)  # fmt: skip
    finally:
        keras.config.set_dtype_policy(previous)
