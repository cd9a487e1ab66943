"""Layer-wise lr decay groups vs hand computation, and with AdamMultilr on the small reranker."""

from __future__ import annotations

import pytest

from capreolus_opt import AdamMultilr
from capreolus_opt.models.encoder import build_reranker
from capreolus_opt.models.layerwise import layerwise_decay_pattern_lrs


def test_values_by_hand():
    groups = layerwise_decay_pattern_lrs(base_lr=1e-3, decay=0.5, num_layers=2)
    assert [(g["name"], g["lr"]) for g in groups] == [
        ("head", pytest.approx(1e-3)),
        ("layer_1", pytest.approx(5e-4)),
        ("layer_0", pytest.approx(2.5e-4)),
        ("embeddings", pytest.approx(1.25e-4)),
    ]
    assert groups[1]["patterns"] == [r"^transformer_layer_1/"]
    assert r"^token_embedding/" in groups[-1]["patterns"]
    assert groups[0]["patterns"] == [r"^head/", r"^pooled_dense/"]
    # decay 1 -> every group at the base lr
    flat = layerwise_decay_pattern_lrs(base_lr=2e-5, decay=1.0, num_layers=12)
    assert {g["lr"] for g in flat} == {2e-5} and len(flat) == 14
    assert flat[-2]["lr"] == 2e-5 and flat[-2]["name"] == "layer_0"


def test_small_reranker_groups_through_adam_multilr():
    model = build_reranker(
        vocab_size=30,
        query_length=2,
        document_length=3,
        num_layers=3,
        hidden_dim=8,
        num_heads=2,
        intermediate_dim=8,
    )
    pattern_lrs = layerwise_decay_pattern_lrs(
        base_lr=1.0,
        decay=0.8,
        num_layers=3,
        layer_pattern="^encoder/layer_{i}/",
        embedding_patterns=("^embedding/",),
        head_patterns=("^head/", "^encoder/final_norm/"),
    )
    opt = AdamMultilr(learning_rate=1.0, pattern_lrs=pattern_lrs, strict=True)
    opt.build(model.trainable_variables)
    lr_of = {row.variable: row.lr for row in opt.group_table().rows}
    assert lr_of["head/score/kernel"] == pytest.approx(1.0)
    assert lr_of["encoder/final_norm/gamma"] == pytest.approx(1.0)
    assert lr_of["encoder/layer_2/ffn_in/kernel"] == pytest.approx(0.8)
    assert lr_of["encoder/layer_1/attention/key/bias"] == pytest.approx(0.64)
    assert lr_of["encoder/layer_0/attention_norm/beta"] == pytest.approx(0.512)
    assert lr_of["embedding/position/embeddings"] == pytest.approx(0.8**4)
    assert opt.variables_by_group()["default"] == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_layers": 0}, ValueError, "num_layers must be a positive int. Received: 0"),
        ({"decay": 1.5}, ValueError, "decay must be in \\(0, 1\\]. Received: 1.5"),
        ({"layer_pattern": "^layer/"}, ValueError, "must contain '\\{i\\}'"),
        ({"head_patterns": "^head/"}, TypeError, "sequences of regexes"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"base_lr": 1e-3, "decay": 0.9, "num_layers": 2, **kwargs}
    with pytest.raises(error, match=match):
        layerwise_decay_pattern_lrs(**args)
