"""train(mixed_precision=...) on the CPU: bfloat16 and float16 against the float32 run.

Tolerances, measured on this task (12 steps): the final weights of a mixed run differ from the
float32 run's by a relative L2 distance of 7.2e-4 (bfloat16) and 4.6e-5 (float16, with or
without XLA); the tests allow 5e-3 and 5e-4, and the same relative bounds on the eval MSE and
the per-group gradient norms. Group learning rates are float32 variables in both runs, so they
match exactly.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from capreolus_opt.training import ListSink, make_strategy
from tests.training.regression_task import RegressionTask, checkpoint_tensors, l2, model_weights
from tests.training.test_train_loop import BATCH, run

STEPS = 12
TOL = {"mixed_bfloat16": 5e-3, "mixed_float16": 5e-4}


def task() -> RegressionTask:
    return RegressionTask(loss_weight=1e-4)


def relative_distance(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return l2([x - y for x, y in zip(a, b, strict=True)]) / l2(b)


@pytest.fixture(scope="module")
def float32_run(tmp_path_factory: pytest.TempPathFactory):
    sink = ListSink()
    result = run(
        tmp_path_factory.mktemp("fp32"), task=task(), num_steps=STEPS, metrics_every=4, sink=sink
    )
    return result, sink


@pytest.mark.parametrize(
    "policy, jit", [("mixed_bfloat16", False), ("mixed_float16", False), ("mixed_float16", True)]
)
def test_mixed_precision_trains_like_float32(tmp_path: Path, float32_run, policy, jit) -> None:
    fp32, sink32 = float32_run
    sink = ListSink()
    starts: list[dict] = []
    mixed = run(
        tmp_path,
        task=task(),
        num_steps=STEPS,
        metrics_every=4,
        sink=sink,
        mixed_precision=policy,
        jit_compile=jit,
        on_start=starts.append,
    )
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    summary = mixed.strategy_summary
    assert (summary["mixed_precision"], summary["dtype_policy"]) == (policy, policy)
    assert starts[0]["strategy_summary"] == summary  # what the tracker records
    assert starts[0]["group_table"].totals() == fp32.group_table.totals()
    tensors = checkpoint_tensors(mixed.checkpoint_path)
    floats = {k: v.dtype for k, v in tensors.items() if v.dtype.kind == "f"}
    assert set(floats.values()) == {np.dtype(np.float32)}, floats  # weights and Adam state
    scale_keys = [k for k in tensors if k.startswith("loss_scale/")]
    if policy == "mixed_float16":
        (key,) = scale_keys
        assert tensors[key] == 2.0**15  # no overflow (TASK's loss weight): the scale never moved
    else:
        assert scale_keys == []
    distance = relative_distance(
        model_weights(task(), mixed.checkpoint_path), model_weights(task(), fp32.checkpoint_path)
    )
    assert distance < TOL[policy]
    assert mixed.eval_metrics["mse"] == pytest.approx(fp32.eval_metrics["mse"], rel=TOL[policy])
    for group in ("encoder", "head", "default"):
        assert sink.series(f"group/{group}/lr") == sink32.series(f"group/{group}/lr")
        norms, norms32 = (
            sink.series(f"group/{group}/grad_norm"),
            sink32.series(f"group/{group}/grad_norm"),
        )
        assert [s for s, _ in norms] == [4, 8, 12]  # unscaled: float32's, not 2**15 times
        np.testing.assert_allclose([v for _, v in norms], [v for _, v in norms32], rtol=TOL[policy])


def test_float16_overflow_on_one_replica_skips_the_step_on_both(tmp_path: Path) -> None:
    """The last replica's rows overflow float16 at the first loss scales: every replica must
    skip those steps (Keras alone checks the first replica and would apply NaN)."""
    results = {}
    for kind in ("default", "mirrored"):
        results[kind] = run(
            tmp_path / kind,
            strategy=make_strategy(kind),
            task=RegressionTask(offset_rows=BATCH // 2),
            num_steps=12,
            mixed_precision="mixed_float16",
        )
    one, two = (checkpoint_tensors(results[k].checkpoint_path) for k in ("default", "mirrored"))
    scale = two["loss_scale/.ATTRIBUTES/VARIABLE_VALUE"]
    iterations = two["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]
    skipped = int(np.log2(2.0**15 / scale))
    assert 1 <= skipped < 12 and iterations == 12 - skipped  # each halving skipped one step
    for key in one:
        assert np.isfinite(two[key]).all(), key
        # float16 layers on half batches round differently: up to 6e-4 relative L2 measured.
        assert relative_distance([two[key]], [one[key]]) < 3e-3, key


def test_bad_policy_is_named_and_the_policy_comes_back_after_a_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"mixed_precision must be one of .*Received: 'float16'"):
        run(tmp_path / "bad", mixed_precision="float16")
    assert not (tmp_path / "bad").exists()

    class Failing(RegressionTask):
        def build_model(self) -> keras.Model:
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        run(tmp_path / "fail", task=Failing(), mixed_precision="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"
