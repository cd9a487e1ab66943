"""The one-pass Adam custom op (capreolus_opt/optimizer/kernel) against TF's fused kernels and the
float64 NumPy reference, its fallback rules, and its build cache.

Both paths compute TF's expressions operation for operation (the op is compiled without fused
multiply-adds), so the one-pass results equal ResourceApplyAdam's bit for bit. The decoupled
weight decay is folded into the op as Keras' eager expression ``p - (p * wd) * lr``; the fallback
runs that expression inside a tf.function, where grappler may reassociate it (1 ulp), so with
weight decay the two paths agree to 1e-7 relative instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt.optimizer import AdamMultilr, kernel
from tests.optimizer.helpers import assert_rel_close, initial_values, random_grads, run
from tests.optimizer.numpy_adam import NumpyAdam, RefGroup
from tests.optimizer.test_distribution import CASES, assert_same, custom_loop, two_devices

REPO = Path(__file__).resolve().parents[2]
LAYOUT = [
    {"patterns": ["encoder/layer_0"], "lr": 0.02, "weight_decay": 0.1},
    {"patterns": ["encoder"], "lr": 0.005},
    {"patterns": ["embedding"], "lr": 0.0},  # frozen
]
OPTIONS = {
    "plain": {},
    "amsgrad": {"amsgrad": True},
    "weight_decay": {"weight_decay": 0.05},
    "amsgrad+weight_decay": {"amsgrad": True, "weight_decay": 0.05},
}


@pytest.fixture(autouse=True)
def fresh_kernel_state():
    kernel.reset()
    yield
    kernel.reset()


def _reference(init, grads, **options) -> NumpyAdam:
    groups = [RefGroup(g["patterns"], g["lr"], g.get("weight_decay")) for g in LAYOUT]
    ref = NumpyAdam(dict(init), learning_rate=0.01, groups=groups, **options)
    for g in grads:
        ref.step(g)
    return ref


def _run(monkeypatch, path: str, mode: str, options: dict) -> dict:
    monkeypatch.setenv(kernel.ENV_MODE, path)
    opt = AdamMultilr(learning_rate=0.01, pattern_lrs=LAYOUT, **options)
    got, _ = run(opt, initial_values(31), random_grads(5, seed=32), mode)
    return got


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("option", OPTIONS)
def test_onepass_equals_tf_kernel_and_reference(monkeypatch, mode, option):
    onepass = _run(monkeypatch, "onepass", mode, OPTIONS[option])
    fallback = _run(monkeypatch, "tf", mode, OPTIONS[option])
    ref = _reference(initial_values(31), random_grads(5, seed=32), **OPTIONS[option])
    assert_rel_close(onepass, ref.params, rtol=1e-6, what=f"onepass/{mode}: ")
    assert_rel_close(fallback, ref.params, rtol=1e-6, what=f"tf/{mode}: ")
    for name, value in onepass.items():
        if name.startswith("encoder/layer_0") or "weight_decay" in option:
            np.testing.assert_allclose(value, fallback[name], rtol=1e-7, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(value, fallback[name], err_msg=name)
    np.testing.assert_array_equal(
        onepass["embedding/embeddings"], initial_values(31)["embedding/embeddings"]
    )


def _op_types(path: str, monkeypatch, amsgrad: bool) -> set[str]:
    monkeypatch.setenv(kernel.ENV_MODE, path)
    values = initial_values(3)
    opt = AdamMultilr(learning_rate=0.01, pattern_lrs=LAYOUT, amsgrad=amsgrad, weight_decay=0.1)
    variables = [tf.Variable(v, name=n) for n, v in values.items()]
    opt.build(variables)
    fn = tf.function(lambda grads: opt.apply(grads, variables))
    grads = [tf.constant(g) for g in random_grads(1, seed=4)[0].values()]
    return {op.type for op in fn.get_concrete_function(grads).graph.get_operations()}


@pytest.mark.parametrize("amsgrad", [False, True])
def test_onepass_op_replaces_tf_kernel_and_weight_decay_pass(monkeypatch, amsgrad):
    onepass = _op_types("auto", monkeypatch, amsgrad)
    fallback = _op_types("tf", monkeypatch, amsgrad)
    op = "CapreolusOnePassAdamAmsgrad" if amsgrad else "CapreolusOnePassAdam"
    tf_op = "ResourceApplyAdamWithAmsgrad" if amsgrad else "ResourceApplyAdam"
    assert op in onepass and tf_op not in onepass
    assert tf_op in fallback and op not in fallback
    # Weight decay rides in the op: no separate read-multiply-assign pass over the variable.
    assert "AssignSubVariableOp" in fallback and "AssignSubVariableOp" not in onepass


@pytest.mark.slow
@pytest.mark.parametrize("case", ["plain", "amsgrad+weight_decay"])
def test_mirrored_two_replicas_onepass_equals_tf_and_one_device(monkeypatch, case):
    monkeypatch.setenv(kernel.ENV_MODE, "onepass")
    onepass = custom_loop(two_devices(), **CASES[case])
    one_device = custom_loop(tf.distribute.get_strategy(), **CASES[case])
    monkeypatch.setenv(kernel.ENV_MODE, "tf")
    fallback = custom_loop(two_devices(), **CASES[case])
    assert_same(one_device, onepass)
    # test_distribution's encoder group has weight decay, whose fallback expression grappler may
    # reassociate (1 ulp a step, module docstring); over the loop's steps the difference carries
    # and grows by a few ulp (CI once saw 3 ulp, 2.54e-7 relative near the bottom of a binade).
    for a, b in zip(onepass, fallback, strict=True):
        np.testing.assert_array_max_ulp(a, b, maxulp=8)


def test_float64_and_reads_taken_before_the_step_are_not_mutated(monkeypatch):
    monkeypatch.setenv(kernel.ENV_MODE, "onepass")
    var = tf.Variable(np.linspace(-1.0, 1.0, 1000), dtype=tf.float64)
    before = var.read_value()  # shares the buffer: the op must copy before writing
    opt = AdamMultilr(learning_rate=2.0**-7)  # the lr variable is float32: exact in binary
    opt.apply([tf.ones_like(var)], [var])
    np.testing.assert_array_equal(before.numpy(), np.linspace(-1.0, 1.0, 1000))
    # First Adam step: alpha = lr * sqrt(1 - b2) / (1 - b1), m = 0.1, v = 0.001.
    step = 2.0**-7 * np.sqrt(0.001) / 0.1 * 0.1 / (np.sqrt(0.001) + 1e-7)
    np.testing.assert_allclose(var.numpy(), np.linspace(-1.0, 1.0, 1000) - step, rtol=0, atol=1e-12)


def test_op_rejects_mismatched_shapes():
    ops = kernel.onepass_ops()
    var, m, v = (tf.Variable(tf.zeros([4])) for _ in range(3))
    one = tf.constant(0.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="var and grad do not have the same"):
        ops.capreolus_one_pass_adam(
            var=var.handle, m=m.handle, v=v.handle, beta1_power=one, beta2_power=one, lr=one,
            beta1=one, beta2=one, epsilon=one, weight_decay=one, grad=tf.zeros([5]),
        )  # fmt: skip


def test_no_compiler_falls_back_with_one_warning_and_correct_results(monkeypatch, tmp_path):
    monkeypatch.setenv(kernel.ENV_CACHE, str(tmp_path / "empty-cache"))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no g++ on PATH
    with pytest.warns(kernel.KernelFallbackWarning) as record:
        got = _run(monkeypatch, "auto", "function", {"amsgrad": True})
        again = _run(monkeypatch, "auto", "eager", {"amsgrad": True})
    assert len(record) == 1  # once per process
    message = str(record[0].message)
    assert "\n" not in message and "g++" in message and "ResourceApplyAdam" in message
    fallback = _run(monkeypatch, "tf", "function", {"amsgrad": True})
    for name in got:
        np.testing.assert_array_equal(got[name], fallback[name])
        np.testing.assert_array_equal(again[name], fallback[name])


def test_forced_onepass_raises_when_the_build_fails(monkeypatch, tmp_path):
    monkeypatch.setenv(kernel.ENV_CACHE, str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that exits 1
    monkeypatch.setenv(kernel.ENV_MODE, "onepass")
    with pytest.raises(kernel.KernelBuildError, match="false exited with 1"):
        kernel.onepass_ops()
    assert not list((tmp_path / "empty-cache").iterdir())  # no half-written library


def test_unknown_mode_is_an_error_naming_the_value(monkeypatch):
    monkeypatch.setenv(kernel.ENV_MODE, "fast")
    with pytest.raises(ValueError, match=r"CAPREOLUS_OPT_ADAM_KERNEL='fast'.*auto, onepass, tf"):
        kernel.onepass_ops()


_BUILD_AND_LOAD = """
import sys, tensorflow as tf
from capreolus_opt.optimizer import kernel
path, compiled = kernel.build()
ops = tf.load_op_library(str(path))
var, m, v = (tf.Variable(tf.ones([3])) for _ in range(3))
c = tf.constant(0.5)
ops.capreolus_one_pass_adam(var=var.handle, m=m.handle, v=v.handle, beta1_power=c,
    beta2_power=c, lr=c, beta1=c, beta2=c, epsilon=c, weight_decay=tf.constant(0.0),
    grad=tf.ones([3]))
print(compiled, float(var[0]))
"""


@pytest.mark.slow
def test_concurrent_first_builds_then_cached_without_recompiling(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    env = {**os.environ, kernel.ENV_CACHE: str(cache), "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _BUILD_AND_LOAD], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    # Both compiled (neither saw a library yet) and both loaded a complete one; the step with
    # ones and every scalar 0.5: m = v = 1, alpha = 0.5 * sqrt(0.5) / 0.5, eps = 0.5.
    expected = 1.0 - np.sqrt(0.5) / (1.0 + 0.5)
    for compiled, value in outputs:
        assert compiled == "True"
        assert float(value) == pytest.approx(expected, rel=1e-6)
    assert [p.name for p in cache.iterdir()] == [kernel.library_path(cache).name]
    # A second build finds the cached library: with a "compiler" that fails it still succeeds.
    monkeypatch.setenv("CXX", "false")
    path, compiled = kernel.build(cache)
    assert (path, compiled) == (kernel.library_path(cache), False)
    done = subprocess.run(
        [sys.executable, "-c", _BUILD_AND_LOAD],
        env={**env, "CXX": "false"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert done.stdout.split()[0] == "False"
