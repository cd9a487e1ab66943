"""The exact GELU of ``BertEncoder`` (transformers' ``"gelu"``) against a float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("keras_hub")

import tensorflow as tf

from capreolus_opt.models.bert_encoder import _gelu_exact

X = np.concatenate([np.linspace(-12.0, 12.0, 2401), [-1e-30, 0.0, 1e-30, -40.0, 40.0]])


def reference(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x], np.float64)


def reference_grad(x: np.ndarray) -> np.ndarray:
    cdf = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def test_exact_gelu_equals_the_erf_definition_in_float32():
    out = np.asarray(_gelu_exact(tf.constant(X, tf.float32)))
    assert out.dtype == np.float32
    ref = reference(X.astype(np.float32).astype(np.float64))
    assert np.all(np.abs(out - ref) <= 2e-6 * np.maximum(1.0, np.abs(ref)))


def test_exact_gelu_gradient_equals_the_analytic_one():
    x = tf.constant(X, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = _gelu_exact(x)
    grad = np.asarray(tape.gradient(y, x))
    assert np.abs(grad - reference_grad(X.astype(np.float32).astype(np.float64))).max() < 1e-5


def test_exact_gelu_keeps_a_half_precision_dtype():
    x = np.linspace(-6.0, 6.0, 241)
    out = _gelu_exact(tf.constant(x, tf.float16))
    assert out.dtype == tf.float16
    assert np.abs(np.asarray(out, np.float64) - reference(x)).max() < 1e-2


def test_exact_gelu_runs_on_erf_not_erfc():
    # TensorFlow's CPU Erfc kernel is a scalar loop (docs/STACK_FACTS.md): keep the vectorised Erf.
    graph = tf.function(_gelu_exact).get_concrete_function(tf.TensorSpec([None], tf.float32)).graph
    types = {op.type for op in graph.get_operations()}
    assert "Erf" in types and "Erfc" not in types
