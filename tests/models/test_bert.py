"""keras_hub BERT reranker (extra `hub`): packing, variable paths, layer-wise groups, presets."""

from __future__ import annotations

import re

import numpy as np
import pytest

keras_hub = pytest.importorskip("keras_hub")

import keras  # noqa: E402

from capreolus_opt import AdamMultilr  # noqa: E402
from capreolus_opt.data.synthetic import SyntheticRankingData  # noqa: E402
from capreolus_opt.models.bert import (  # noqa: E402
    BertPairPacker,
    bert_reranker_builder,
    build_bert_reranker,
)
from capreolus_opt.models.layerwise import layerwise_decay_pattern_lrs  # noqa: E402
from capreolus_opt.models.reranker import RerankingTask  # noqa: E402

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


def test_preset_directory_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=40, max_sequence_length=16, **TINY)
    preset = tmp_path / "preset"
    backbone.save_to_preset(str(preset))
    vocab_dir = preset / "assets" / "tokenizer"
    vocab_dir.mkdir(parents=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(36)]
    (vocab_dir / "vocabulary.txt").write_text("\n".join(tokens) + "\n")
    model = build_bert_reranker(
        vocab_size=40, query_length=3, document_length=4, preset=str(preset)
    )
    packer = model.get_layer("packer")
    assert (packer.cls_id, packer.sep_id) == (2, 3)
    loaded = {v.path: v.numpy() for v in model.weights}
    for v in backbone.weights:
        np.testing.assert_array_equal(loaded[v.path], v.numpy())
    with pytest.raises(ValueError, match="exceeds the preset's max_sequence_length=16"):
        build_bert_reranker(vocab_size=40, query_length=8, document_length=8, preset=str(preset))
    with pytest.raises(ValueError, match="larger than the preset's \\(40\\)"):
        build_bert_reranker(vocab_size=41, query_length=3, document_length=4, preset=str(preset))
    with pytest.raises(ValueError, match="local keras_hub preset directory"):
        build_bert_reranker(
            vocab_size=4, query_length=3, document_length=4, preset=str(tmp_path / "missing")
        )
