"""Bad `pattern_lrs` input fails at construction with a message naming the offending entry,
the value received and what was expected."""

from __future__ import annotations

import re

import keras
import pytest

from capreolus_opt import AdamMultilr

OK = {"patterns": ["encoder"], "lr": 0.01}

# (pattern_lrs, exception type, regexes that must all appear in the message)
BAD_INPUTS = {
    "invalid regex": (
        [OK, {"patterns": ["head", "enc(oder"], "lr": 0.1}],
        ValueError,
        [r"pattern_lrs\[1\]\['patterns'\]\[1\]", "not a valid regex", r"'enc\(oder'"],
    ),
    "invalid regex, dict shorthand": (
        {"[head": 0.1},
        ValueError,
        ["not a valid regex", r"'\[head'"],
    ),
    "invalid regex, pair": (
        [("*head", 0.1)],
        ValueError,
        [r"pattern_lrs\[0\]", "not a valid regex", r"'\*head'"],
    ),
    "empty pattern list": (
        [OK, {"patterns": [], "lr": 0.1}],
        ValueError,
        [r"pattern_lrs\[1\]\['patterns'\]", "at least one", r"\[\]"],
    ),
    "unknown dict key": (
        [{"patterns": ["head"], "lr": 0.1, "learning_rate": 0.2}],
        ValueError,
        [r"pattern_lrs\[0\]", "unknown", "learning_rate", "patterns"],
    ),
    "missing lr": (
        [{"patterns": ["head"]}],
        ValueError,
        [r"pattern_lrs\[0\]", "'lr'"],
    ),
    "negative lr": (
        [OK, {"patterns": ["head"], "lr": -0.1}],
        ValueError,
        [r"pattern_lrs\[1\]\['lr'\]", ">= 0", r"-0\.1"],
    ),
    "nan lr": (
        [{"patterns": ["head"], "lr": float("nan")}],
        ValueError,
        [r"pattern_lrs\[0\]\['lr'\]", "finite", "nan"],
    ),
    "infinite lr": (
        {"head": float("inf")},
        ValueError,
        ["head", "finite", "inf"],
    ),
    "non-numeric lr": (
        [{"patterns": ["head"], "lr": "0.1"}],
        TypeError,
        [r"pattern_lrs\[0\]\['lr'\]", "float", "LearningRateSchedule", r"'0\.1'"],
    ),
    "bool lr": (
        [("head", True)],
        TypeError,
        [r"pattern_lrs\[0\]", "float", "True"],
    ),
    "duplicate group names": (
        [
            {"patterns": ["encoder"], "lr": 0.1, "name": "body"},
            {"patterns": ["head"], "lr": 0.2, "name": "body"},
        ],
        ValueError,
        ["[Dd]uplicate", "'body'", r"pattern_lrs\[1\]"],
    ),
    "non-string pattern": (
        [{"patterns": ["head", 3], "lr": 0.1}],
        TypeError,
        [r"pattern_lrs\[0\]\['patterns'\]\[1\]", "regex string", "3"],
    ),
    "non-string pattern, pair": (
        [(re.compile("head"), 0.1)],
        TypeError,
        [r"pattern_lrs\[0\]", "regex", "re.compile"],
    ),
    "negative group weight decay": (
        [{"patterns": ["head"], "lr": 0.1, "weight_decay": -1.0}],
        ValueError,
        [r"pattern_lrs\[0\]\['weight_decay'\]", ">= 0", r"-1\.0"],
    ),
    "not a list": (
        "encoder",
        TypeError,
        ["pattern_lrs", "'encoder'"],
    ),
    "entry neither dict nor pair": (
        [OK, 0.1],
        TypeError,
        [r"pattern_lrs\[1\]", "0.1"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_pattern_lrs_raise_naming_the_entry(case):
    pattern_lrs, error, needles = BAD_INPUTS[case]
    with pytest.raises(error, match=needles[0]) as info:
        AdamMultilr(pattern_lrs=pattern_lrs)
    message = str(info.value)
    for needle in needles[1:]:
        assert re.search(needle, message), f"{needle!r} not in message: {message}"


def test_default_group_name_is_reserved():
    with pytest.raises(ValueError, match=r"pattern_lrs\[0\]\['name'\].*'default'"):
        AdamMultilr(pattern_lrs=[{"patterns": ["head"], "lr": 0.1, "name": "default"}])


@pytest.mark.parametrize("pattern_lrs", [None, [], {}])
def test_no_groups_is_valid(pattern_lrs):
    opt = AdamMultilr(pattern_lrs=pattern_lrs)
    v = keras.Variable([1.0, 2.0], name="w")
    opt.build([v])
    assert opt.group_names == ["default"]


def test_legacy_lr_alias():
    opt = AdamMultilr(lr=0.25)
    assert float(opt.learning_rate) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"learning_rate=0\.1.*lr=0\.25"):
        AdamMultilr(learning_rate=0.1, lr=0.25)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"gradient_accumulation_steps": 1}, "gradient_accumulation_steps"),
        ({"clipnorm": 1.0, "global_clipnorm": 1.0}, "clipnorm"),
    ],
)
def test_base_optimizer_arguments_are_still_validated(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        AdamMultilr(**kwargs)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), -3])
def test_base_learning_rate_is_checked_like_group_lrs(value):
    # Stock Keras accepts these and trains (a sweep point at -1.0 ran to COMPLETED).
    with pytest.raises(ValueError, match=r"learning_rate must be a finite float >= 0\. Received"):
        AdamMultilr(learning_rate=value)
    with pytest.raises(ValueError, match=r"learning_rate must be a finite float >= 0"):
        AdamMultilr(lr=value)


def test_integer_base_learning_rate_becomes_a_float():
    assert float(AdamMultilr(learning_rate=1).learning_rate) == 1.0
