"""Best-model selection by a dev metric (training/selection.py) and strict weight restore."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt.models.encoder import build_reranker
from capreolus_opt.training.selection import EvaluationRecorder, recover_best_dir
from capreolus_opt.training.weights import restore_weights, save_weights


class _DevTestTask:
    """Records what the recorder asks for; dev/test metrics are supplied by the test."""

    selection_metric = "ndcg@10"

    def __init__(self) -> None:
        self.recorded: dict[int, dict] = {}
        self.current: dict = {}
        self.exports = 0

    def record_evaluation(self, step: int, directory: str) -> list[str]:
        self.recorded[step] = dict(self.current)
        return []

    def final_metrics(self, step: int, directory: str) -> dict[str, float]:
        return dict(self.recorded[step])

    def export(self, directory: str, model=None) -> None:
        self.exports += 1
        (Path(directory) / "reranker.json").write_text("{}")


def _model() -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])


def test_the_best_dev_evaluation_is_the_one_reported_on_test(tmp_path):
    task, model = _DevTestTask(), _model()
    recorder = EvaluationRecorder(task, model, str(tmp_path), chief=True)
    kept = None
    for step, dev, test in [(10, 0.3, 0.9), (20, 0.5, 0.2), (30, 0.5, 0.8), (40, 0.4, 0.7)]:
        model.layers[0].kernel.assign(np.full((3, 2), step, np.float32))
        task.current = {"dev/ndcg@10": dev, "test/ndcg@10": test}
        recorder.evaluated(step, {"ndcg@10": dev})
        if step == 20:
            kept = [np.array(v) for v in model.get_weights()]
    (tmp_path / "evaluations").mkdir(exist_ok=True)
    final, artifacts = recorder.finish({"ndcg@10": 0.4})
    # Step 20 is the best on dev (step 30 ties it: the earlier one is kept), whatever test says.
    assert final == {"dev/ndcg@10": 0.5, "test/ndcg@10": 0.2, "best_step": 20.0}
    assert json.loads((tmp_path / "best" / "best.json").read_text()) == {
        "step": 20,
        "metric": "ndcg@10",
        "value": 0.5,
    }
    assert task.exports == 2 and artifacts[-1].endswith("best.json")
    fresh = _model()
    assert restore_weights(fresh, str(tmp_path / "best" / "model.weights.npz")) == 2
    for got, want in zip(fresh.get_weights(), kept, strict=True):
        np.testing.assert_array_equal(got, want)
    # A resumed run continues the comparison from best.json.
    again = EvaluationRecorder(task, model, str(tmp_path), chief=True)
    task.current = {"dev/ndcg@10": 0.45}
    again.evaluated(50, {"ndcg@10": 0.45})
    assert again.best["step"] == 20


def test_a_kill_while_a_new_best_is_written_leaves_one_whole_best_model(tmp_path, monkeypatch):
    import capreolus_opt.training.selection as selection

    task, model = _DevTestTask(), _model()
    recorder = EvaluationRecorder(task, model, str(tmp_path), chief=True)
    recorder.evaluated(10, {"ndcg@10": 0.3})
    best, new, old = (tmp_path / n for n in ("best", "best.new", "best.old"))
    # Killed while writing the new best (its best.json not yet written): step 10 stays.
    monkeypatch.setattr(selection, "_promote", lambda *a: (_ for _ in ()).throw(SystemExit))
    task.export = lambda directory, model=None: (_ for _ in ()).throw(SystemExit)
    with pytest.raises(SystemExit):
        recorder.evaluated(20, {"ndcg@10": 0.5})
    assert new.is_dir() and not (new / "best.json").exists()
    recover_best_dir(str(best))
    assert json.loads((best / "best.json").read_text())["step"] == 10 and not new.exists()
    # Killed between moving best/ aside and renaming best.new/ in: the new, complete one wins.
    del task.export
    monkeypatch.undo()
    real_rename = selection.os.rename
    calls = []

    def rename_then_die(src, dst):
        calls.append(dst)
        real_rename(src, dst)
        if dst.endswith(".old"):
            raise SystemExit

    monkeypatch.setattr(selection.os, "rename", rename_then_die)
    with pytest.raises(SystemExit):
        recorder.evaluated(30, {"ndcg@10": 0.6})
    monkeypatch.undo()
    assert not best.exists() and old.is_dir() and (new / "best.json").exists()
    again = EvaluationRecorder(task, model, str(tmp_path), chief=True)  # recovers on resume
    assert again.best["step"] == 30 and not new.exists() and not old.exists()
    assert (best / "model.weights.npz").is_file() and (best / "reranker.json").is_file()
    # Only best.old/ left (best.new/ renamed in, then best/ lost): put back.
    real_rename(best, old)
    recover_best_dir(str(best))
    assert json.loads((best / "best.json").read_text())["step"] == 30


def test_tasks_without_dev_selection_and_non_chief_workers_change_nothing(tmp_path):
    plain = EvaluationRecorder(object(), _model(), str(tmp_path), chief=True)
    plain.evaluated(1, {"mrr@10": 0.1})
    assert plain.finish({"mrr@10": 0.1}) == ({"mrr@10": 0.1}, [])
    worker = EvaluationRecorder(_DevTestTask(), _model(), str(tmp_path / "w"), chief=False)
    worker.evaluated(1, {"ndcg@10": 0.1})
    assert not (tmp_path / "w").exists()


def test_restore_checks_every_weight_of_the_reranker(tmp_path):
    kwargs = dict(vocab_size=50, query_length=4, document_length=8, hidden_dim=8, num_heads=2,
                  intermediate_dim=16, num_layers=2)  # fmt: skip
    keras.utils.set_random_seed(1)
    trained = build_reranker(**kwargs)
    path = save_weights(trained, str(tmp_path / "m.weights.npz"))
    keras.utils.set_random_seed(2)
    fresh = build_reranker(**kwargs)
    # The training checkpoint's model-only restore reaches a fraction of these; this one all.
    assert restore_weights(fresh, path) == len(trained.variables) > 30
    ids = {"query": np.ones((2, 4), np.int32), "document": np.ones((2, 8), np.int32)}
    np.testing.assert_array_equal(fresh(ids), trained(ids))
    other = build_reranker(**{**kwargs, "num_layers": 1})
    with pytest.raises(ValueError, match=r"does not match model .*not in model: encoder/layer_1"):
        restore_weights(other, path)
    wider = build_reranker(**{**kwargs, "vocab_size": 60})
    with pytest.raises(ValueError, match=r"embedding/token/embeddings: model \(60, 8\)"):
        restore_weights(wider, path)


def test_model_only_checkpoint_restore_is_partial_which_is_why_weights_exist(tmp_path):
    """The problem restore_weights solves, kept as a regression fact about TF 2.21."""
    from capreolus_opt import AdamMultilr

    model = build_reranker(vocab_size=20, query_length=2, document_length=3, hidden_dim=8,
                           num_heads=2, intermediate_dim=8, num_layers=1)  # fmt: skip
    opt = AdamMultilr(learning_rate=1e-3)
    opt.build(model.trainable_variables)
    path = tf.train.Checkpoint(model=model, optimizer=opt).save(str(tmp_path / "ckpt"))
    reader = tf.train.load_checkpoint(path)
    under_model = [k for k in reader.get_variable_to_shape_map() if k.startswith("model/")]
    assert len(under_model) < len(model.variables)


class _WithTestSplit(_DevTestTask):
    """A dev/test task whose test candidates are scored at the end by the best model."""

    def __init__(self) -> None:
        super().__init__()
        self.tested: list[tuple[int, dict, dict]] = []

    def test_dataset(self, global_batch_size: int):
        return f"test batches of {global_batch_size}"

    def record_test_evaluation(self, step, outputs, directory, best) -> list[str]:
        self.tested.append((step, outputs, dict(best)))
        self.recorded[step]["test/ndcg@10"] = outputs["kernel_sum"]
        return []


def test_test_split_is_scored_once_by_the_best_weights_with_step_0_beside(tmp_path):
    import io

    task, model = _WithTestSplit(), _model()
    recorder = EvaluationRecorder(task, model, str(tmp_path), chief=True)
    evaluations = tmp_path / "evaluations"
    evaluations.mkdir()
    for step, dev, model_alone in [(0, 0.40, 0.30), (10, 0.5, 0.35), (20, 0.45, 0.5)]:
        model.layers[0].kernel.assign(np.full((3, 2), step, np.float32))
        task.current = {
            "dev/ndcg@10": dev, "dev/model/ndcg@10": model_alone,
            "dev/first_stage/ndcg@10": 0.38, "dev/model/p_randomisation": 0.25,
        }  # fmt: skip
        recorder.evaluated(step, {"ndcg@10": dev})
        if step == 0:  # what final_metrics(0) reads is the step-0 file's existence
            (evaluations / "step_00000000.metrics.json").write_text("{}")
    seen = []

    def evaluate(dataset):
        seen.append(dataset)
        return {"kernel_sum": float(np.sum(model.layers[0].kernel))}

    assert recorder.score_test(evaluate, 8)
    # The best step (10) was reloaded although the model last held step 20's weights.
    assert seen == ["test batches of 8"] and task.tested[0][1] == {"kernel_sum": 60.0}
    assert task.tested[0][0] == 10 and task.tested[0][2]["step"] == 10
    err = io.StringIO()
    final, _ = recorder.finish({"ndcg@10": 0.45}, stream=err)
    assert final["test/ndcg@10"] == 60.0 and final["best_step"] == 10.0
    assert final["start/dev/ndcg@10"] == 0.40 and final["start/dev/model/ndcg@10"] == 0.30
    # The best model alone (0.35) is below the first stage (0.38): said on stderr, once.
    assert err.getvalue() == (
        "warning: the learned model alone is not better than the first stage on dev: ndcg@10 "
        "0.3500 vs 0.3800 (randomisation p = 0.25, best step 10); its contribution is nil or "
        "negative\n"
    )
    # Tasks without a test split (or without a best model) are left alone.
    assert not EvaluationRecorder(
        _DevTestTask(), model, str(tmp_path / "x"), chief=True
    ).score_test(evaluate, 8)


def test_rerank_scores_with_one_trace_for_every_batch_size_equal_to_the_model():
    from capreolus_opt.models.saved_reranker import compiled_scorer

    model = build_reranker(vocab_size=30, query_length=4, document_length=6, hidden_dim=8,
                           num_heads=2, intermediate_dim=8, num_layers=1)  # fmt: skip
    score = compiled_scorer(model, 4, 6)
    rng = np.random.default_rng(0)
    for n in (5, 3):
        q = rng.integers(1, 30, (n, 4)).astype(np.int32)
        d = rng.integers(1, 30, (n, 6)).astype(np.int32)
        eager = model({"query": q, "document": d}, training=False)
        np.testing.assert_allclose(score(q, d), eager, rtol=1e-5, atol=1e-6)
    assert score.experimental_get_tracing_count() == 1


class _SavedWhole(_WithTestSplit):
    """Exports as ``RerankingTask`` does for a ``model_builder``'s model: saved whole."""

    def export(self, directory: str, model=None) -> None:
        super().export(directory, model)
        model.save(str(Path(directory) / "model.keras"))


def test_a_model_saved_whole_is_the_best_folder_s_only_copy_of_the_weights(tmp_path):
    task, model = _SavedWhole(), _model()
    recorder = EvaluationRecorder(task, model, str(tmp_path), chief=True)
    (tmp_path / "evaluations").mkdir()
    for step, dev in [(10, 0.5), (20, 0.4)]:
        model.layers[0].kernel.assign(np.full((3, 2), step, np.float32))
        task.current = {"dev/ndcg@10": dev}
        recorder.evaluated(step, {"ndcg@10": dev})
    best = tmp_path / "best"
    assert sorted(p.name for p in best.iterdir()) == ["best.json", "model.keras", "reranker.json"]
    # The end-of-run test scoring reloads step 10's weights from that one file.
    assert recorder.score_test(lambda d: {"kernel_sum": float(np.sum(model.layers[0].kernel))}, 4)
    assert task.tested[0][1] == {"kernel_sum": 60.0}
    # A model of another shape is refused, naming the file.
    wider = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="head")])
    with pytest.raises(ValueError, match=r"model.keras does not match model .*\(3, 3\)"):
        restore_weights(wider, str(best / "model.keras"))
    (best / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="model.keras is unreadable"):
        restore_weights(model, str(best / "model.keras"))


def test_a_model_the_manifest_rebuilds_keeps_only_its_weights_file(tmp_path):
    task, model = _DevTestTask(), _model()
    EvaluationRecorder(task, model, str(tmp_path), chief=True).evaluated(10, {"ndcg@10": 0.5})
    names = sorted(p.name for p in (tmp_path / "best").iterdir())
    assert names == ["best.json", "model.weights.npz", "reranker.json"]
