"""The NumPy reference itself is checked first: against hand-computed values and, in float64,
against stock keras.optimizers.Adam for the features where Keras is known to be right (dense
gradients, no groups). Only then is it trusted as the oracle for AdamMultilr."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tests.optimizer.helpers import SHAPES, initial_values, random_grads
from tests.optimizer.numpy_adam import NumpyAdam, RefGroup, dense_from_slices


def test_first_step_by_hand():
    # After one step m = (1-b1) g, v = (1-b2) g^2, so with epsilon-hat the step is
    # lr * sqrt(1-b2)|g| / (sqrt(1-b2)|g| + eps) * sign(g): just under lr.
    ref = NumpyAdam({"w": np.array([1.0, -2.0])}, learning_rate=0.1)
    ref.step({"w": np.array([0.5, -4.0])})
    for p0, g, p1 in zip([1.0, -2.0], [0.5, -4.0], ref.params["w"], strict=True):
        s = math.sqrt(0.001) * abs(g)
        assert p1 == pytest.approx(p0 - 0.1 * math.copysign(s / (s + 1e-7), g), rel=1e-14)


def test_second_step_by_hand():
    ref = NumpyAdam({"w": np.array([0.0])}, learning_rate=1.0, epsilon=0.0)
    ref.step({"w": np.array([1.0])})
    ref.step({"w": np.array([3.0])})
    m = 0.9 * 0.1 + 0.1 * 3.0  # 0.39
    v = 0.999 * 0.001 + 0.001 * 9.0  # 0.009999
    alpha = math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    assert ref.params["w"][0] == pytest.approx(-1.0 - alpha * m / math.sqrt(v), rel=1e-14)


def test_groups_first_match_wins_and_frozen_has_no_state():
    ref = NumpyAdam(
        {"enc/a": np.ones(2), "enc/b": np.ones(2), "head/c": np.ones(2)},
        learning_rate=0.5,
        groups=[RefGroup(["enc/a"], 0.0), RefGroup(["enc"], 0.1)],
    )
    ref.step({k: np.ones(2) for k in ref.params})
    np.testing.assert_array_equal(ref.params["enc/a"], 1.0)
    assert "enc/a" not in ref.m
    assert 1 - ref.params["enc/b"][0] == pytest.approx(0.1, rel=1e-4)
    assert 1 - ref.params["head/c"][0] == pytest.approx(0.5, rel=1e-4)


def test_dense_from_slices_sums_duplicates():
    dense = dense_from_slices(np.array([[1.0], [2.0], [4.0]]), np.array([2, 0, 2]), (3, 1))
    np.testing.assert_array_equal(dense[:, 0], [2.0, 0.0, 5.0])


KERAS_CASES = {
    "plain": {},
    "amsgrad": {"amsgrad": True},
    "clipnorm": {"clipnorm": 0.7},
    "global_clipnorm": {"global_clipnorm": 1.3},
    "weight_decay": {"weight_decay": 0.0625},
    "accumulation": {"gradient_accumulation_steps": 3},
    "schedule+accumulation": {"gradient_accumulation_steps": 2, "schedule": True},
}


# Keras casts Python floats to float32 before casting to the variable dtype (the lr lives in a
# float32 variable, and ops.cast(0.999, "float64") goes through float32, so beta powers use
# float32 betas): use lr and betas that float32 represents exactly, so float64 runs can agree
# to ~1e-12.
EXACT = {"beta_1": 0.875, "beta_2": 1 - 2.0**-9, "learning_rate": 2.0**-6}


@pytest.mark.parametrize("case", KERAS_CASES)
def test_reference_matches_keras_adam_in_float64(case):
    kwargs = {**KERAS_CASES[case], **EXACT}
    ref_lr = kwargs["learning_rate"]
    if kwargs.pop("schedule", False):
        # decay_rate 0.5 and decay_steps 1 keep every lr exact in float32.
        kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(2.0**-6, 1, 0.5)
        ref_lr = lambda step: 2.0**-6 * 0.5**step  # noqa: E731
    init = initial_values(3)
    grads = random_grads(7, seed=4)
    variables = [keras.Variable(v.astype(np.float64), dtype="float64") for v in init.values()]
    opt = keras.optimizers.Adam(**kwargs)
    for g in grads:
        opt.apply(
            [keras.ops.convert_to_tensor(x.astype(np.float64)) for x in g.values()], variables
        )
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "gradient_accumulation_steps"}
    ref_kwargs["learning_rate"] = ref_lr
    ref = NumpyAdam(
        dict(init),
        accumulation_steps=kwargs.get("gradient_accumulation_steps"),
        **ref_kwargs,
    )
    for g in grads:
        ref.step(g)
    for name, var in zip(SHAPES, variables, strict=True):
        np.testing.assert_allclose(var.numpy(), ref.params[name], rtol=1e-12, atol=0)
