"""Bad scalar arguments raise at construction, naming the argument and the value;
stock Keras accepts every one of these and fails later, or trains to NaN."""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import pytest

from capreolus_opt import AdamMultilr
from tests.optimizer.helpers import initial_values, random_grads, run

NAN = float("nan")

# (kwargs, exception type, regexes that must all appear in the message)
BAD_ARGUMENTS = {
    "nan weight_decay": ({"weight_decay": NAN}, ValueError, ["weight_decay", "nan"]),
    "negative weight_decay": ({"weight_decay": -0.1}, ValueError, ["weight_decay", r"-0\.1"]),
    "string weight_decay": ({"weight_decay": "0.01"}, TypeError, ["weight_decay", "'0.01'"]),
    "beta_1 = 1": ({"beta_1": 1.0}, ValueError, ["beta_1", r"\[0, 1\)", r"1\.0"]),
    "beta_1 > 1": ({"beta_1": 1.5}, ValueError, ["beta_1", r"1\.5"]),
    "negative beta_2": ({"beta_2": -0.5}, ValueError, ["beta_2", r"-0\.5"]),
    "nan beta_2": ({"beta_2": NAN}, ValueError, ["beta_2", "nan"]),
    "string beta_1": ({"beta_1": "0.9"}, TypeError, ["beta_1", "'0.9'"]),
    "negative epsilon": ({"epsilon": -1e-7}, ValueError, ["epsilon", ">= 0", "-1e-07"]),
    "nan epsilon": ({"epsilon": NAN}, ValueError, ["epsilon", "nan"]),
    "non-bool strict": ({"strict": "no"}, TypeError, ["strict", "True or False", "'no'"]),
    "int strict": ({"strict": 1}, TypeError, ["strict", "1"]),
    "non-bool fused": ({"fused": None}, TypeError, ["fused", "None"]),
    "unsafe group name": (
        {"pattern_lrs": [{"patterns": ["head"], "lr": 0.1, "name": "a/b c"}]},
        ValueError,
        [r"pattern_lrs\[0\]\['name'\]", "metric names", "'a/b c'"],
    ),
    "negative schedule at step 0": (
        {"learning_rate": keras.optimizers.schedules.PolynomialDecay(-1e-3, 10)},
        ValueError,
        ["learning_rate", "PolynomialDecay", "step 0", r"-0\.001"],
    ),
    "nan schedule in a group at step 0": (
        {
            "pattern_lrs": [
                {"patterns": ["head"], "lr": keras.optimizers.schedules.ExponentialDecay(NAN, 1, 1)}
            ]
        },
        ValueError,
        [r"pattern_lrs\[0\]\['lr'\]", "ExponentialDecay", "nan"],
    ),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_raise_at_construction_naming_the_value(case):
    kwargs, error, needles = BAD_ARGUMENTS[case]
    with pytest.raises(error, match=needles[0]) as info:
        AdamMultilr(**kwargs)
    for needle in needles[1:]:
        assert re.search(needle, str(info.value)), f"{needle!r} not in: {info.value}"


def test_a_schedule_that_fails_at_step_0_is_named():
    class Broken(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            raise RuntimeError("boom")

    with pytest.raises(ValueError, match=r"learning_rate \(Broken\).*step 0: boom"):
        AdamMultilr(learning_rate=Broken())


@pytest.mark.parametrize("value", [NAN, -1.0, "0.1", math.inf])
def test_set_default_group_lr_is_checked(value):
    opt = AdamMultilr(learning_rate=0.01)
    with pytest.raises((ValueError, TypeError), match=r"set_group_learning_rate\('default'"):
        opt.set_group_learning_rate("default", value)
    assert float(opt.learning_rate) == pytest.approx(0.01)  # unchanged


def test_set_default_group_lr_refuses_a_scheduled_base():
    opt = AdamMultilr(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5))
    with pytest.raises(ValueError, match="'default' is driven by a schedule"):
        opt.set_group_learning_rate("default", 0.2)


def test_valid_edge_values_still_train():
    # beta = 0 and epsilon = 0 are legal (RMS-free momentum, no damping); numpy scalars pass.
    opt = AdamMultilr(
        learning_rate=np.float32(0.01),
        beta_1=0.0,
        beta_2=np.float64(0.5),
        epsilon=0.0,
        weight_decay=0,
        pattern_lrs=[{"patterns": ["head"], "lr": 0.005, "name": "head.v2-b"}],
    )
    got, _ = run(opt, initial_values(0), random_grads(2), "eager")
    assert all(np.all(np.isfinite(v)) for v in got.values())
    assert opt.group_names == ["head.v2-b", "default"]
