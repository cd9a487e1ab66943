"""BERT dual encoder (extra `hub`): pooling, scoring and the in-batch + hard-negative loss against
NumPy references, the checkpoint's pooling file, the fine-tuning configs' weight-decay groups,
the warm-up/decay schedule and the collection-length rule."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("keras_hub")

import keras
import tensorflow as tf

from capreolus_opt import AdamMultilr
from capreolus_opt.data.trec.data import LengthRule, TrecRerankingData
from capreolus_opt.models.bert import build_bert_reranker
from capreolus_opt.models.dual_encoder import (
    BertTextPacker,
    MaskedPooling,
    build_dual_encoder,
    dual_encoder_builder,
    in_batch_softmax_loss,
    pooling_from_folder,
    resolve_pooling,
)
from capreolus_opt.optimizer.schedules import LinearWarmupDecay
from capreolus_opt.training.precision import resolve_policy
from tests.cli_helpers import ROOT

TINY = dict(num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, dropout=0.0)
SMOKE = ROOT / "gin_configs" / "data" / "trec_smoke"


# --- pooling -------------------------------------------------------------------------------
def _masked_batch(seed=0):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(3, 6, 5)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], bool)
    return hidden, mask


def test_mean_pooling_averages_only_the_unmasked_tokens():
    hidden, mask = _masked_batch()
    got = np.asarray(MaskedPooling("mean")(hidden, mask))
    want = np.stack([hidden[i][mask[i]].astype(np.float64).mean(axis=0) for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_cls_and_max_pooling():
    hidden, mask = _masked_batch(1)
    np.testing.assert_array_equal(np.asarray(MaskedPooling("cls")(hidden, mask)), hidden[:, 0])
    want = np.stack([hidden[i][mask[i]].max(axis=0) for i in range(3)])
    np.testing.assert_array_equal(np.asarray(MaskedPooling("max")(hidden, mask)), want)


def test_text_packer_wraps_each_text_and_moves_padding_to_the_end():
    out = BertTextPacker(cls_id=8, sep_id=9, pad_id=0)(np.array([[3, 0, 4], [0, 0, 0]], np.int32))
    np.testing.assert_array_equal(out["token_ids"], [[8, 3, 4, 9, 0], [8, 9, 0, 0, 0]])
    np.testing.assert_array_equal(out["padding_mask"], np.asarray(out["token_ids"]) != 0)
    np.testing.assert_array_equal(out["segment_ids"], np.zeros((2, 5)))


def _write_pooling(folder, **modes):
    (folder / "1_Pooling").mkdir(parents=True)
    flags = {"word_embedding_dimension": 8, "pooling_mode_cls_token": False,
             "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
             "pooling_mode_mean_sqrt_len_tokens": False}  # fmt: skip
    flags.update(modes)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(flags))


def test_pooling_is_read_from_a_sentence_transformers_folder(tmp_path):
    assert pooling_from_folder(str(tmp_path)) is None
    assert resolve_pooling("auto", str(tmp_path)) == "mean"
    _write_pooling(tmp_path, pooling_mode_cls_token=True)
    assert resolve_pooling("auto", str(tmp_path)) == "cls"
    with pytest.warns(UserWarning, match="overrides the checkpoint's own 'cls'"):
        assert resolve_pooling("mean", str(tmp_path)) == "mean"


def test_an_unsupported_pooling_mode_is_named(tmp_path):
    _write_pooling(tmp_path, pooling_mode_mean_sqrt_len_tokens=True)
    with pytest.raises(ValueError, match=r"pooling_mode_mean_sqrt_len_tokens.*expected exactly"):
        pooling_from_folder(str(tmp_path))
    with pytest.raises(ValueError, match=r"pooling must be 'auto' or one of .*Received: 'sum'"):
        resolve_pooling("sum", None)


# --- scoring --------------------------------------------------------------------------------
def _packed(ids, cls_id, sep_id, length):
    """[CLS] ids-without-PAD [SEP] then PAD, and its mask (NumPy, independent of the packer)."""
    rows = [[cls_id, *[t for t in row if t != 0], sep_id] for row in ids]
    out = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out, out != 0


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_scores_are_cosine_or_dot_of_mean_pooled_hidden_states(similarity):
    keras.utils.set_random_seed(0)
    model = build_dual_encoder(
        vocab_size=20, query_length=4, document_length=6, pooling="mean",
        similarity=similarity, **TINY,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    query = rng.integers(1, 20, (5, 4)).astype(np.int32)
    document = rng.integers(1, 20, (5, 6)).astype(np.int32)
    query[:, 3:] = 0
    document[1, 2:] = 0
    got = np.asarray(model({"query": query, "document": document}))

    backbone = next(
        layer for layer in model.get_layer("embedder").layers if "backbone" in layer.name
    )
    head = np.asarray(model.get_layer("embedder").get_layer("head").kernel)
    np.testing.assert_array_equal(head, np.eye(8, dtype=np.float32))  # identity at step 0

    def embed(ids):
        tokens, mask = _packed(ids, 20, 21, ids.shape[1] + 2)
        hidden = backbone(
            {"token_ids": tokens, "segment_ids": np.zeros_like(tokens), "padding_mask": mask}
        )["sequence_output"]
        hidden = np.asarray(hidden, np.float64)
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled @ head

    q, d = embed(query), embed(document)
    if similarity == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(got, (q * d).sum(1), rtol=1e-5, atol=1e-5)


def test_the_pooler_is_frozen_and_the_head_is_the_only_new_variable():
    model = build_dual_encoder(vocab_size=20, query_length=3, document_length=5, **TINY)
    paths = [v.path for v in model.trainable_variables]
    assert not any(p.startswith("pooled_dense/") for p in paths)
    assert [p for p in paths if p.startswith("head/")] == ["head/kernel"]


# --- the loss -------------------------------------------------------------------------------
def _reference_loss(q, p, n, scale, same_query, same_positive, in_batch=True):
    q, p, n = (np.asarray(x, np.float64) for x in (q, p, n))
    out = []
    for i in range(len(q)):
        if not in_batch:
            logits = scale * np.array([q[i] @ p[i], q[i] @ n[i]])
        else:
            docs = np.concatenate([p, n])
            keep = [c for c in range(len(docs)) if c == i or not (
                (c < len(p) and same_query[i, c]) or same_positive[i, c]
            )]  # fmt: skip
            logits = scale * np.array([q[i] @ docs[c] for c in keep])
            assert keep[0] <= i and i in keep
        top = logits.max()
        out.append(top + np.log(np.exp(logits - top).sum()) - scale * (q[i] @ p[i]))
    return np.array(out)


def test_in_batch_softmax_matches_numpy_with_false_negatives_masked():
    rng = np.random.default_rng(3)
    q, p, n = (rng.normal(size=(4, 6)).astype(np.float32) for _ in range(3))
    same_query = np.eye(4, dtype=bool)
    same_query[0, 2] = same_query[2, 0] = True  # queries 0 and 2 are copies
    same_positive = np.zeros((4, 8), bool)
    same_positive[np.arange(4), np.arange(4)] = True
    same_positive[1, 6] = True  # query 1's positive is query 2's hard negative
    got = in_batch_softmax_loss(
        q, p, n, scale=3.0, same_query=same_query, same_positive=same_positive
    )
    want = _reference_loss(q, p, n, 3.0, same_query, same_positive)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)  # float32 logits
    unmasked = in_batch_softmax_loss(q, p, n, scale=3.0)
    assert not np.allclose(np.asarray(unmasked), want)  # the masks changed something
    own = in_batch_softmax_loss(q, p, n, scale=3.0, in_batch=False)
    np.testing.assert_allclose(
        np.asarray(own), _reference_loss(q, p, n, 3.0, None, None, in_batch=False),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


def test_builder_loss_is_the_in_batch_loss_of_the_model_embeddings():
    keras.utils.set_random_seed(1)
    builder = dual_encoder_builder(scale=5.0, pooling="mean", **TINY)
    model = builder(vocab_size=20, query_length=3, document_length=5, pad_id=0)
    rng = np.random.default_rng(1)
    query = rng.integers(1, 20, (4, 3)).astype(np.int32)
    query[3] = query[1]  # a repeated query: its copy's positive is no negative
    pos, neg = (rng.integers(1, 20, (4, 5)).astype(np.int32) for _ in range(2))
    features = {"query": query, "positive": pos, "negative": neg}
    got = tf.function(lambda f: builder.per_example_loss(model, f, False))(features)
    embed = lambda ids: np.asarray(  # noqa: E731
        model.get_layer("embedder")(model.get_layer("packer")(ids))
    )
    docs = np.concatenate([pos, neg])
    same_query = (query[:, None, :] == query[None, :, :]).all(-1)
    same_positive = (pos[:, None, :] == docs[None, :, :]).all(-1)
    want = _reference_loss(embed(query), embed(pos), embed(neg), 5.0, same_query, same_positive)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


# --- the configs' groups --------------------------------------------------------------------
_NO_DECAY = re.compile(r"(_norm/(gamma|beta)|/bias)$")


@pytest.mark.parametrize("config", ["trec_bert_reranker.gin", "trec_dual_reranker.gin"])
def test_config_groups_skip_weight_decay_on_layer_norm_and_biases(config):
    from capreolus_opt import config as gin_config

    gin_config.parse_config([str(ROOT / "gin_configs" / config)], ['BERT_PRESET = "unused"'])
    groups = gin_config.configured("AdamMultilr.pattern_lrs")
    schedule = gin_config.configured("AdamMultilr.learning_rate")
    weight_decay = gin_config.configured("AdamMultilr.weight_decay")
    assert weight_decay > 0 and isinstance(schedule, LinearWarmupDecay)
    keras.utils.set_random_seed(0)
    if "dual" in config:
        model = build_dual_encoder(vocab_size=20, query_length=3, document_length=5, **TINY)
    else:
        model = build_bert_reranker(vocab_size=20, query_length=3, document_length=5, **TINY)
    # The config's groups, at a rate and decay large enough to see one step of decay.
    opt = AdamMultilr(learning_rate=0.01, weight_decay=1.0, pattern_lrs=groups, strict=True)
    opt.build(model.trainable_variables)
    by_group = {g: {v.path for v in vs} for g, vs in opt.variables_by_group().items()}
    assert by_group["default"] == set()
    assert by_group["head"] == {"head/kernel"}
    assert by_group["no_decay"] == {
        v.path for v in model.trainable_variables if _NO_DECAY.search(v.path)
    }
    assert by_group["encoder"] and not any(_NO_DECAY.search(p) for p in by_group["encoder"])

    # One update with zero gradients moves only weight decay's share: none in "no_decay".
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
    opt.apply([tf.zeros_like(v) for v in model.trainable_variables], model.trainable_variables)
    for v in model.trainable_variables:
        group = next(g for g, paths in by_group.items() if v.path in paths)
        mult = 1.0 if group != "head" else groups[0]["lr_mult"]
        decay = 0.0 if group == "no_decay" else 1.0 * 0.01 * mult
        now = keras.ops.convert_to_numpy(v)
        np.testing.assert_allclose(now, before[v.path] * (1 - decay), rtol=1e-6, err_msg=v.path)


# --- schedule, precision, lengths -----------------------------------------------------------
def test_linear_warmup_then_decay():
    schedule = LinearWarmupDecay(1e-3, total_steps=10, warmup_steps=4, end_learning_rate=1e-4)
    got = [float(schedule(s)) for s in range(12)]
    want = [1e-3 * (s + 1) / 4 if s < 4 else 1e-4 + 9e-4 * max(0, 10 - s) / 6 for s in range(12)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    again = LinearWarmupDecay.from_config(schedule.get_config())
    assert float(again(7)) == pytest.approx(want[7])
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        LinearWarmupDecay(1e-3, total_steps=4, warmup_steps=4)


def test_auto_precision_is_float16_only_with_a_gpu():
    want = "mixed_float16" if tf.config.list_physical_devices("GPU") else None
    assert resolve_policy("auto") == want
    assert resolve_policy("mixed_bfloat16") == "mixed_bfloat16"


def test_length_rule_takes_a_percentile_rounded_up_to_8_within_the_positions():
    lengths = np.arange(1, 201)
    pair = LengthRule(90.0, 128, "pair")
    assert pair._pick(lengths, 1000) == 184  # ceil(p90 = 180.1) -> 181 -> 184
    assert pair.query_length([5, 6, 7]) == 8
    assert pair.query_length(lengths) == (128 - 3) // 2
    assert pair.document_length(lengths, 16) == 128 - 3 - 16
    assert LengthRule(50.0, 512, "separate").document_length(lengths, 16) == 104  # p50 = 100.5


def test_auto_lengths_come_from_the_collection(tmp_path):
    data = TrecRerankingData(
        collection=str(SMOKE / "collection.tsv"), topics=str(SMOKE / "topics.tsv"),
        qrels=str(SMOKE / "qrels.txt"), first_stage_run=str(SMOKE / "run.txt"),
        folds=str(SMOKE / "folds.json"), top_k=20, max_query_length="auto",
        max_doc_length="auto", length_percentile=80.0, max_positions=512,
        length_budget="separate", cache_dir=str(tmp_path),
    )  # fmt: skip
    triples = data.train_triples()
    stats = data.truncation_stats()
    # Independent: the words of each candidate document (the collection vocabulary splits on
    # whitespace), their 80th percentile rounded up to a multiple of 8.
    from capreolus_opt.data.trec.formats import iter_collection, read_run

    words = {d: len(t.split()) for _, d, t in iter_collection(str(SMOKE / "collection.tsv"))}
    run = read_run(str(SMOKE / "run.txt"))
    candidates = {d for q in run for d in list(run[q])[:20]}
    want = int(np.ceil(np.percentile([words[d] for d in sorted(candidates)], 80.0)))
    assert triples.positive.shape[1] == -(-want // 8) * 8 == stats["max_doc_length"]
    assert triples.query.shape[1] == 8 == stats["max_query_length"]
    fixed = TrecRerankingData(
        collection=str(SMOKE / "collection.tsv"), topics=str(SMOKE / "topics.tsv"),
        qrels=str(SMOKE / "qrels.txt"), first_stage_run=str(SMOKE / "run.txt"),
        folds=str(SMOKE / "folds.json"), top_k=20, max_query_length=8,
        max_doc_length=triples.positive.shape[1], cache_dir=str(tmp_path),
    )  # fmt: skip
    np.testing.assert_array_equal(fixed.eval_pairs().document, data.eval_pairs().document)


def test_a_bad_length_setting_is_named():
    with pytest.raises(ValueError, match=r'max_doc_length must be a positive integer or "auto"'):
        TrecRerankingData(collection="c", topics="t", qrels="q", max_doc_length="long")
    with pytest.raises(ValueError, match=r"length_budget must be one of .*Received: 'joint'"):
        TrecRerankingData(collection="c", topics="t", qrels="q", length_budget="joint")


# --- layer-wise decay with the recipe's schedule and no-decay groups --------------------------
def test_layerwise_multipliers_with_no_decay_groups_cover_every_variable_once():
    from capreolus_opt.models.layerwise import (
        BERT_NO_DECAY_PATTERNS,
        layerwise_decay_pattern_lrs,
    )

    groups = layerwise_decay_pattern_lrs(
        base_lr=4.0, decay=0.5, num_layers=2, as_lr_mult=True,
        no_decay_patterns=BERT_NO_DECAY_PATTERNS,
    )  # fmt: skip
    keras.utils.set_random_seed(0)
    model = build_bert_reranker(vocab_size=20, query_length=3, document_length=5, **TINY)
    schedule = LinearWarmupDecay(1e-3, total_steps=10, warmup_steps=0)
    opt = AdamMultilr(learning_rate=schedule, weight_decay=0.01, pattern_lrs=groups)
    opt.build(model.trainable_variables)
    by_var = {v.path: g for g, vs in opt.variables_by_group().items() for v in vs}
    assert set(by_var) == {v.path for v in model.trainable_variables}
    assert not opt.variables_by_group()["default"]
    for path, group in by_var.items():
        assert group.endswith(".no_decay") == bool(_NO_DECAY.search(path)), (path, group)
    depth = {"head": 0, "layer_1": 1, "layer_0": 2, "embeddings": 3}
    mults = {g["name"]: g["lr_mult"] for g in groups}
    for name, k in depth.items():
        assert mults[name] == mults[f"{name}.no_decay"] == pytest.approx(4.0 * 0.5**k)
    assert by_var["transformer_layer_0/feedforward_output_dense/bias"] == "layer_0.no_decay"
    assert by_var["transformer_layer_0/feedforward_output_dense/kernel"] == "layer_0"
    assert by_var["embeddings_layer_norm/gamma"] == "embeddings.no_decay"
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith(".no_decay"))


def test_under_mixed_float16_scores_and_loss_stay_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        builder = dual_encoder_builder(pooling="mean", **TINY)
        model = builder(vocab_size=20, query_length=3, document_length=5, pad_id=0)
        rng = np.random.default_rng(2)
        query = rng.integers(1, 20, (4, 3)).astype(np.int32)
        pos, neg = (rng.integers(1, 20, (4, 5)).astype(np.int32) for _ in range(2))
        scores = model({"query": query, "document": pos})
        loss = builder.per_example_loss(model, {"query": query, "positive": pos, "negative": neg},
                                        False)  # fmt: skip
        assert scores.dtype == "float32" and loss.dtype == "float32"
        assert np.all(np.abs(np.asarray(scores)) <= 1.0 + 1e-3)  # cosines
    finally:
        keras.config.set_dtype_policy(previous)


def test_the_compiled_scorer_gives_the_models_scores():
    from capreolus_opt.models.saved_reranker import compiled_scorer

    model = build_dual_encoder(vocab_size=20, query_length=4, document_length=6, **TINY)
    score = compiled_scorer(model, 4, 6)
    rng = np.random.default_rng(1)
    for n in (5, 2):  # a full and a last, shorter batch, through one trace
        query = rng.integers(1, 20, (n, 4)).astype(np.int32)
        document = rng.integers(1, 20, (n, 6)).astype(np.int32)
        document[0, 3:] = 0
        eager = model({"query": query, "document": document}, training=False)
        np.testing.assert_allclose(score(query, document), eager, rtol=1e-5, atol=1e-6)
    assert score.experimental_get_tracing_count() == 1
