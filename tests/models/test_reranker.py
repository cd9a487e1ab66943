"""The cross-encoder reranker and RerankingTask (the Task protocol of docs/ARCHITECTURE.md)."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt.data.synthetic import SyntheticRankingData
from capreolus_opt.models.encoder import build_reranker
from capreolus_opt.models.reranker import RerankingTask

SMALL_MODEL = dict(hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64)


def _task(**kwargs):
    data = SyntheticRankingData(seed=0, num_train_triples=2048, num_eval_queries=50)
    return RerankingTask(data=data, **{**SMALL_MODEL, **kwargs})


def test_variable_paths_make_natural_groups():
    model = build_reranker(
        vocab_size=50,
        query_length=3,
        document_length=5,
        num_layers=3,
        hidden_dim=8,
        num_heads=2,
        intermediate_dim=16,
    )
    paths = [v.path for v in model.trainable_variables]
    groups = {
        p: [pat for pat in ("^embedding/", "^encoder/", "^head/") if re.search(pat, p)]
        for p in paths
    }
    # Every variable in exactly one of the three README patterns.
    assert all(len(g) == 1 for g in groups.values()), groups
    for i in range(3):
        assert f"encoder/layer_{i}/attention/query/kernel" in paths
        assert f"encoder/layer_{i}/ffn_out/bias" in paths
    assert {"embedding/token/embeddings", "head/score/kernel"} <= set(paths)
    assert not any(p.startswith("encoder/layer_3/") for p in paths)


def test_padding_is_masked():
    keras.utils.set_random_seed(0)
    model = build_reranker(
        vocab_size=20,
        query_length=3,
        document_length=6,
        hidden_dim=8,
        num_heads=2,
        intermediate_dim=16,
        pad_id=0,
    )
    q = np.array([[3, 4, 0], [5, 0, 0]], np.int32)
    d = np.array([[6, 7, 8, 0, 0, 0], [9, 9, 0, 0, 0, 0]], np.int32)
    before = model({"query": q, "document": d}).numpy()
    # If PAD were seen anywhere (attention keys or pooling), changing its embedding would matter.
    table = model.get_layer("embedding").token.embeddings
    table.assign(tf.tensor_scatter_nd_update(table, [[0]], [np.full(8, 50.0, np.float32)]))
    after = model({"query": q, "document": d}).numpy()
    np.testing.assert_allclose(after, before, atol=1e-5)
    assert before.shape == (2,)


def test_per_example_loss_scores_both_documents():
    task = _task(loss="pairwise_hinge", margin=0.7)
    model = task.build_model()
    batch = next(iter(task.train_dataset(8, seed=0)))
    loss = task.per_example_loss(model, batch, training=False).numpy()
    pos = model({"query": batch["query"], "document": batch["positive"]}).numpy()
    neg = model({"query": batch["query"], "document": batch["negative"]}).numpy()
    ref = np.maximum(0.0, 0.7 - (pos.astype(np.float64) - neg))
    np.testing.assert_allclose(loss, ref, atol=1e-5)
    soft = _task(loss="softmax")
    ref_soft = np.log1p(np.exp(neg.astype(np.float64) - pos))
    np.testing.assert_allclose(
        soft.per_example_loss(model, batch, False).numpy(), ref_soft, atol=1e-5
    )


def test_eval_outputs_and_dataset_shapes():
    task = _task()
    model = task.build_model()
    batches = list(task.eval_dataset(64))
    assert sum(int(b["qid"].shape[0]) for b in batches) == 500
    out = task.eval_outputs(model, batches[0])
    assert set(out) == {"score", "qid", "label", "pair"} and out["score"].shape == (64,)
    # `pair` numbers the rows, so outputs can be matched to pairs in any gathering order.
    np.testing.assert_array_equal(np.concatenate([b["pair"] for b in batches]), np.arange(500))
    # eval_batch_size overrides the batch size the loop passes.
    assert int(next(iter(_task(eval_batch_size=100).eval_dataset(8)))["qid"].shape[0]) == 100
    assert next(iter(task.train_dataset(16, seed=1)))["positive"].shape == (16, 24)


def test_model_builder_replaces_default_model():
    seen = {}

    def builder(**kwargs):
        seen.update(kwargs)
        return build_reranker(**kwargs, hidden_dim=8, num_heads=1, intermediate_dim=8, num_layers=1)

    model = _task(model_builder=builder).build_model()
    assert seen == {"vocab_size": 1000, "query_length": 6, "document_length": 24, "pad_id": 0}
    assert not any(v.path.startswith("encoder/layer_1/") for v in model.weights)


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="loss must be one of .*Received: 'hinge'"):
        _task(loss="hinge")
    with pytest.raises(ValueError, match="hidden_dim=30 must be divisible by num_heads=4"):
        build_reranker(vocab_size=5, query_length=2, document_length=2, hidden_dim=30, num_heads=4)


def _evaluate(task, model):
    outs = {"score": [], "qid": [], "label": [], "pair": []}
    for batch in task.eval_dataset(250):
        for k, v in task.eval_outputs(model, batch).items():
            outs[k].append(np.asarray(v))
    return task.eval_metrics({k: np.concatenate(v) for k, v in outs.items()})


@pytest.mark.slow
def test_training_on_synthetic_data_beats_untrained_model():
    keras.utils.set_random_seed(0)
    task = _task(loss="softmax")
    model = task.build_model()
    untrained = _evaluate(task, model)
    optimizer = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(task.per_example_loss(model, batch, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    for batch in task.train_dataset(32, seed=0).take(200):
        step(batch)
    trained = _evaluate(task, model)
    # Random ranking of 10 candidates with 2 relevant gives MRR ~0.35 (pessimistic ties).
    assert untrained["mrr@10"] < 0.55
    assert trained["mrr@10"] > untrained["mrr@10"] + 0.25, (untrained, trained)
    assert trained["ndcg@10"] > untrained["ndcg@10"] + 0.15, (untrained, trained)
