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


# --- several stacks, each with its own depth ----------------------------------------------------
def two_tower_model():
    import keras

    text_in, image_in = keras.Input((4,)), keras.Input((6,))
    t = keras.layers.Dense(4, name="text_embed")(text_in)
    for i in range(3):
        t = keras.layers.Dense(4, name=f"text_layer_{i}")(t)
    v = image_in
    for i in range(11):  # > 9: layer_1 must not take layer_10's variables
        v = keras.layers.Dense(3, name=f"vision_block_{i}")(v)
    out = keras.layers.Dense(1, name="head")(keras.layers.Concatenate()([t, v]))
    return keras.Model([text_in, image_in], out)


STACKS = [
    {
        "name": "text",
        "layer_regex": r"^text_layer_(\d+)/",
        "num_layers": 3,
        "embedding_patterns": ["^text_embed/"],
    },
    {"name": "vision", "layer_regex": r"^vision_block_(?P<depth>\d+)", "num_layers": 11},
]


def test_stacks_decay_each_from_its_own_depth():
    pattern_lrs = layerwise_decay_pattern_lrs(
        base_lr=1.0, decay=0.5, head_patterns=("^head/",), stacks=STACKS
    )
    opt = AdamMultilr(learning_rate=1.0, pattern_lrs=pattern_lrs, strict=True)
    opt.build(two_tower_model().trainable_variables)
    rows = {row.variable: row for row in opt.group_table().rows}
    assert rows["head/kernel"].lr == 1.0
    # text: L = 3 -> layer_2 at 0.5, layer_0 at 0.125, embeddings at 0.5**4
    assert rows["text_layer_2/kernel"].lr == pytest.approx(0.5)
    assert rows["text_layer_0/bias"].lr == pytest.approx(0.125)
    assert rows["text_embed/kernel"].lr == pytest.approx(0.5**4)
    assert rows["text_embed/kernel"].group == "text.embeddings"
    # vision: L = 11, its own count; block_1 and block_10 are different groups
    assert rows["vision_block_10/kernel"].lr == pytest.approx(0.5)
    assert rows["vision_block_1/kernel"].group == "vision.layer_1"
    assert rows["vision_block_1/kernel"].lr == pytest.approx(0.5**10)
    assert rows["vision_block_0/kernel"].lr == pytest.approx(0.5**11)
    assert opt.variables_by_group()["default"] == []
    assert "vision.embeddings" not in opt.group_names  # no embedding patterns given


@pytest.mark.parametrize(
    ("stacks", "error", "match"),
    [
        ([{**STACKS[0], "layer_regex": r"^t/layer_\d+/"}], ValueError, "exactly one capture group"),
        (
            [{**STACKS[0], "layer_regex": r"^(t)/layer_(\d+)/"}],
            ValueError,
            r"stacks\[0\]\['layer_regex'\].*has 2",
        ),
        ([{**STACKS[0], "layer_regex": "^t/(layer"}], ValueError, "not a valid regex"),
        ([{**STACKS[0], "num_layers": 0}], ValueError, r"stacks\[0\]\['num_layers'\]"),
        ([STACKS[0], {**STACKS[1], "name": "text"}], ValueError, r"stacks\[1\]\['name'\].*unique"),
        ([{**STACKS[0], "name": "a/b"}], ValueError, "'a/b'"),
        ([{**STACKS[0], "depth": 3}], ValueError, r"stacks\[0\]: unknown keys \['depth'\]"),
        ([{"name": "x", "num_layers": 2}], ValueError, r"missing keys \['layer_regex'\]"),
        (STACKS[0], TypeError, "non-empty list"),
        ([], TypeError, "non-empty list"),
    ],
)
def test_bad_stacks(stacks, error, match):
    with pytest.raises(error, match=match):
        layerwise_decay_pattern_lrs(base_lr=1e-3, decay=0.9, stacks=stacks)


def test_stacks_and_num_layers_are_exclusive():
    with pytest.raises(ValueError, match="either num_layers"):
        layerwise_decay_pattern_lrs(base_lr=1e-3, decay=0.9, num_layers=2, stacks=STACKS)
    with pytest.raises(ValueError, match="num_layers must be a positive int. Received: None"):
        layerwise_decay_pattern_lrs(base_lr=1e-3, decay=0.9)


@pytest.mark.slow
def test_groups_cli_previews_stacks():
    from tests.cli_helpers import SMOKE, run_cli

    stacks = (
        '[{"name": "enc", "layer_regex": "^encoder/layer_(\\\\d+)/", "num_layers": 2, '
        '"embedding_patterns": ["^embedding/"]}]'
    )
    heads = '["^head/", "^encoder/final_norm/"]'
    proc = run_cli(
        "groups", SMOKE,
        "--gin_param", "RerankingTask.num_layers = 2",
        "--gin_param", "AdamMultilr.pattern_lrs = @layerwise_decay_pattern_lrs()",
        "--gin_param", "layerwise_decay_pattern_lrs.base_lr = 0.01",
        "--gin_param", "layerwise_decay_pattern_lrs.decay = 0.5",
        "--gin_param", f"layerwise_decay_pattern_lrs.head_patterns = {heads}",
        "--gin_param", f"layerwise_decay_pattern_lrs.stacks = {stacks}",
        "--strict",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    groups = {}
    for line in proc.stdout.splitlines():
        cells = line.split()
        if len(cells) == 6 and "/" in cells[0]:
            groups.setdefault(cells[3], set()).add(float(cells[5]))
    assert groups == {
        "head": {0.01},
        "enc.layer_1": {0.005},
        "enc.layer_0": {0.0025},
        "enc.embeddings": {0.00125},
    }
    assert "group default" in proc.stdout
