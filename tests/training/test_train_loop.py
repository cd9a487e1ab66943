"""train(): distribution equivalence, no retrace, diagnostics vs NumPy, resume, signals, NaN."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from capreolus_opt.training import ListSink, NonFiniteLossError, make_strategy, train
from tests.training.regression_task import (
    RegressionTask,
    checkpoint_tensors,
    l2,
    model_weights,
    numpy_gradients,
)

BATCH = 8


def adam_multilr() -> AdamMultilr:
    """Two named groups plus an empty default; the head's lr is a schedule (halves each step)."""
    head_lr = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=1, decay_rate=0.5)
    return AdamMultilr(
        learning_rate=0.01,
        pattern_lrs=[
            {"patterns": ["encoder/"], "lr": 0.02, "name": "encoder"},
            {"patterns": ["head/"], "lr": head_lr, "name": "head"},
        ],
    )


def run(workdir: Path, strategy=None, **kwargs):
    args = dict(
        task=RegressionTask(),
        optimizer=adam_multilr,
        strategy=strategy or make_strategy("default"),
        workdir=str(workdir),
        num_steps=6,
        global_batch_size=BATCH,
        seed=3,
        progress=False,
    )
    args.update(kwargs)
    return train(**args)


def assert_same_checkpoints(a: str, b: str, atol: float) -> None:
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert sorted(ta) == sorted(tb)
    for key in ta:
        np.testing.assert_allclose(tb[key], ta[key], rtol=0, atol=atol, err_msg=key)


def test_mirrored_equals_default_on_same_global_batches(tmp_path: Path) -> None:
    one = run(tmp_path / "default")
    two = run(tmp_path / "mirrored", strategy=make_strategy("mirrored", num_cpu_devices=2))
    assert two.strategy_summary["num_replicas"] == 2
    assert_same_checkpoints(one.checkpoint_path, two.checkpoint_path, atol=1e-5)
    assert two.eval_metrics["count"] == 37.0  # every eval example scored once, gathered
    assert two.eval_metrics["mse"] == pytest.approx(one.eval_metrics["mse"], rel=1e-5)


@pytest.mark.slow
def test_no_retrace_and_steps_per_loop_and_jit(tmp_path: Path) -> None:
    sink = ListSink()
    looped = run(
        tmp_path / "loop", num_steps=12, steps_per_loop=3, metrics_every=6, eval_every=6, sink=sink
    )
    assert looped.trace_counts == {"train": 1, "train_with_diagnostics": 1, "evaluate": 1}
    assert [s for s, _ in sink.series("train/loss")] == [6, 12]
    assert [s for s, _ in sink.series("eval/mse")] == [6, 12]
    plain = run(tmp_path / "plain", num_steps=12, metrics_every=6)
    assert plain.trace_counts == {"train": 1, "train_with_diagnostics": 1, "evaluate": 1}
    # Three steps per call compute exactly what twelve single-step calls compute.
    assert_same_checkpoints(plain.checkpoint_path, looped.checkpoint_path, atol=1e-6)
    jit = run(tmp_path / "jit", num_steps=12, metrics_every=6, jit_compile=True)
    assert jit.trace_counts["train"] == 1
    assert_same_checkpoints(plain.checkpoint_path, jit.checkpoint_path, atol=1e-5)


def test_group_diagnostics_match_numpy_from_weights_before_and_after(tmp_path: Path) -> None:
    task, sink = RegressionTask(), ListSink()
    steps = 4
    result = run(
        tmp_path,
        strategy=make_strategy("mirrored"),
        task=task,
        num_steps=steps,
        metrics_every=steps,
        checkpoint_every=1,
        max_checkpoints_to_keep=10,
        sink=sink,
    )
    before = model_weights(task, str(tmp_path / f"ckpt-{steps - 1}"))
    after = model_weights(task, result.checkpoint_path)
    batch = task.train_batches(BATCH, seed=3, count=steps)[-1]
    grads = numpy_gradients(before, batch)
    logged = {n: v for s, n, v in sink.records if s == steps}
    members = {"encoder": [0, 1], "head": [2, 3], "default": []}
    # lr used by step t=4: the head's schedule at iteration 3; float groups as given.
    lrs = {"encoder": 0.02, "head": 0.05 * 0.5**3, "default": 0.01}
    for group, idx in members.items():

        def pick(arrays: list[np.ndarray], idx: list[int] = idx) -> list[np.ndarray]:
            return [arrays[i] for i in idx]

        expected = {
            "lr": lrs[group],
            "grad_norm": l2(pick(grads)),  # of the gradient summed over both replicas
            "update_norm": l2([a - b for a, b in zip(pick(after), pick(before), strict=True)]),
            "param_norm": l2(pick(after)),
        }
        for name, value in expected.items():
            key = f"group/{group}/{name}"
            assert logged[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert logged["train/loss"] == pytest.approx(
        np.mean(
            ((batch["x"] @ before[0] + before[1]) @ before[2] + before[3] - batch["y"][:, None])
            ** 2
        ),
        rel=1e-5,
    )


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    full = run(tmp_path / "full", num_steps=8, steps_per_loop=2, metrics_every=4)
    first = run(tmp_path / "split", num_steps=4, steps_per_loop=2, metrics_every=4)
    assert first.final_step == 4
    starts: list[int] = []
    resumed = run(
        tmp_path / "split",
        num_steps=8,
        steps_per_loop=2,
        metrics_every=4,
        on_start=lambda info: starts.append(info["start_step"]),
    )
    assert starts == [4] and resumed.final_step == 8
    # Model, optimizer moments, iteration count, group lr variables and step: all identical.
    assert_same_checkpoints(full.checkpoint_path, resumed.checkpoint_path, atol=1e-6)
    assert resumed.eval_metrics == pytest.approx(full.eval_metrics, rel=1e-6)


def test_signal_checkpoints_flushes_and_raises_keyboard_interrupt(tmp_path: Path) -> None:
    class SignalAtStep(ListSink):
        def log_metrics(self, step, metrics):
            super().log_metrics(step, metrics)
            if step == 4 and "train/loss" in metrics:
                os.kill(os.getpid(), signal.SIGTERM)  # arrives between two step calls

    sink = SignalAtStep()
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="at step 4"):
        run(tmp_path / "sig", num_steps=10, metrics_every=2, sink=sink)
    assert signal.getsignal(signal.SIGTERM) is previous  # handler restored
    assert sink.flush_count == 2  # before the checkpoint (no point may trail it), and at the end
    assert tf.train.latest_checkpoint(str(tmp_path / "sig")).endswith("ckpt-4")
    resumed = run(tmp_path / "sig", num_steps=10)
    full = run(tmp_path / "full", num_steps=10)
    assert_same_checkpoints(full.checkpoint_path, resumed.checkpoint_path, atol=1e-6)


def test_non_finite_loss_names_step_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    task, sink = RegressionTask(nonfinite_batch=5), ListSink()  # the 6th global batch
    with pytest.raises(NonFiniteLossError, match="at step 6") as info:
        run(tmp_path, task=task, num_steps=10, checkpoint_every=2, sink=sink)
    assert info.value.step == 6
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert latest.endswith("ckpt-4")
    assert all(np.isfinite(w).all() for w in model_weights(task, latest))
    assert sink.flush_count == 3  # before the checkpoints at steps 2 and 4, and as the loop fails


def test_on_start_sees_group_table_and_strategy(tmp_path: Path) -> None:
    seen = []
    run(tmp_path, num_steps=2, on_start=seen.append)
    (info,) = seen
    assert info["strategy_summary"]["kind"] == "default"
    assert info["group_table"].totals() == {"encoder": (2, 28), "head": (2, 5), "default": (0, 0)}


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    mirrored = make_strategy("mirrored")
    with pytest.raises(ValueError, match="global_batch_size=7 is not divisible by the 2 replicas"):
        run(tmp_path, strategy=mirrored, global_batch_size=7)
    with pytest.raises(ValueError, match="jit_compile=True with several replicas needs Mirrored"):
        run(tmp_path, strategy=mirrored, jit_compile=True)
    with pytest.raises(ValueError, match="metrics_every=5 must be a multiple of steps_per_loop=2"):
        run(tmp_path, steps_per_loop=2, metrics_every=5)
    with pytest.raises(ValueError, match="num_steps must be an int >= 0. Received: -1"):
        run(tmp_path, num_steps=-1)
    with pytest.raises(ValueError, match="created outside the scope of the MirroredStrategy"):
        run(tmp_path, strategy=mirrored, optimizer=keras.optimizers.Adam())
    with pytest.raises(TypeError, match="zero-argument factory"):
        run(tmp_path, optimizer="adam")
    assert not any(tmp_path.iterdir())  # nothing written by a rejected call


def test_every_checkpoint_follows_a_flush_of_the_points_before_it(tmp_path: Path, monkeypatch):
    """A kill right after a save must not lose points the resumed run will not log again."""
    from capreolus_opt.training import checkpoints

    class HoldingSink(ListSink):
        """Delivers only on flush(), like a tracker whose observer lags."""

        def __init__(self) -> None:
            super().__init__()
            self.pending: list[int] = []
            self.delivered: list[int] = []

        def log_metrics(self, step, metrics):
            super().log_metrics(step, metrics)
            self.pending.append(int(step))

        def flush(self):
            super().flush()
            self.delivered += self.pending
            self.pending = []

    sink = HoldingSink()
    at_save: list[tuple[int, int]] = []
    real_save = checkpoints.CheckpointState.save

    def save(self, step):
        at_save.append((step, max(sink.delivered, default=0)))
        return real_save(self, step)

    monkeypatch.setattr(checkpoints.CheckpointState, "save", save)
    run(tmp_path / "w", sink=sink, num_steps=8, metrics_every=1, checkpoint_every=4)
    assert [step for step, _ in at_save] == [4, 8]
    assert all(delivered >= step for step, delivered in at_save), at_save


def test_step_0_is_evaluated_for_pretrained_tasks_and_not_again_on_resume(tmp_path: Path) -> None:
    class Pretrained(RegressionTask):
        pretrained = True

    sink = ListSink()
    first = run(tmp_path / "p", task=Pretrained(), num_steps=2, sink=sink)
    (point,) = [p for p in sink.series("eval/mse") if p[0] == 0]
    # Step 0 is the untrained model: its mse is that of the freshly seeded model.
    fresh = run(tmp_path / "fresh", num_steps=0)
    assert point[1] == pytest.approx(fresh.eval_metrics["mse"], rel=1e-6)
    assert first.eval_metrics["start/mse"] == point[1] and first.eval_metrics["start/count"] == 37
    assert "start/mse" not in run(tmp_path / "plain", num_steps=2).eval_metrics  # random init
    # An explicit False wins over the task; a resumed run past step 0 does not redo it.
    assert "start/mse" not in run(tmp_path / "off", task=Pretrained(), eval_at_start=False,
                                  num_steps=2).eval_metrics  # fmt: skip
    again = ListSink()
    resumed = run(tmp_path / "p", task=Pretrained(), num_steps=4, sink=again)
    assert [s for s, _ in again.series("eval/mse")] == [
        4
    ] and "start/mse" not in resumed.eval_metrics
