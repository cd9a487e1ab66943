"""Every bad value is refused before a run is recorded; legal-but-suspect values warn.

In-process: the value rules at parse time, the preflight of a configured training (strategy,
optimizer, schedules over the run, strict groups) and its warnings. Through the real CLI (slow):
a sample of bad values, each exit 2 with one line and no record, and a warning that lets the run
proceed.
"""

from __future__ import annotations

import inspect
import os

import keras
import pytest

from capreolus_opt import config as gin_config
from capreolus_opt.training import preflight
from tests.cli_helpers import SMOKE, run_cli


def _registered_signatures() -> dict[str, inspect.Signature]:
    from capreolus_opt.config.gin_compat import find_configurable

    out = {}
    for selector in ("train", "make_strategy", "AdamMultilr", "lr_group", "RerankingTask",
                     "SyntheticRankingData", "TsvRankingData", "TrecRerankingData",
                     "bert_reranker_builder", "ExponentialDecay", "PolynomialDecay", "CosineDecay",
                     "layerwise_decay_pattern_lrs"):  # fmt: skip
        fn = find_configurable(selector).wrapped
        out[selector] = inspect.signature(fn.__init__ if inspect.isclass(fn) else fn)
    return out


def test_every_value_rule_names_a_factory_parameter_and_every_default_obeys_it():
    signatures = _registered_signatures()
    names = {name for sig in signatures.values() for name in sig.parameters}
    assert set(gin_config.VALUE_RULES) <= names
    for selector, sig in signatures.items():
        for name, param in sig.parameters.items():
            rule = gin_config.VALUE_RULES.get(name)
            if rule is not None and param.default is not inspect.Parameter.empty:
                assert rule.problem(param.default) is None, (selector, name, param.default)


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        ("train.num_steps = -5", "train.num_steps = -5: expected a value >= 0"),
        ("train.global_batch_size = 0", "expected a value >= 1"),
        ("train.checkpoint_every = -1", "train.checkpoint_every = -1: expected a value >= 0"),
        ('train.mixed_precision = "float8"', "expected one of [None, 'mixed_float16'"),
        ('make_strategy.kind = "quantum"', "make_strategy.kind = 'quantum': expected one of"),
        ("make_strategy.num_cpu_devices = 0", "make_strategy.num_cpu_devices = 0"),
        ("train.seed = -1", "train.seed = -1: expected a value >= 0"),
        ("AdamMultilr.clipnorm = 0.0", "AdamMultilr.clipnorm = 0.0: expected a value > 0.0"),
        ("encoder/lr_group.unfreeze_warmup = -2", "encoder/lr_group.unfreeze_warmup = -2"),
        ("RerankingTask.dropout = 1.0", "expected a value >= 0.0 and < 1.0"),
    ],
)
def test_out_of_range_bindings_are_refused_when_parsed(binding, expected):
    with pytest.raises(gin_config.GinConfigError) as info:
        gin_config.parse_config([SMOKE], [binding])
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_bounds_and_choices_name_what_they_expect():
    bound = gin_config.Bound(0.0, 1.0, high_open=True)
    assert bound.problem(0.0) is None and bound.problem(None) is None
    assert bound.problem(1.0) == "a value >= 0.0 and < 1.0"
    assert bound.problem("text") is None  # types are the annotation's job
    assert gin_config.OneOf(("a", None)).problem("b") == "one of ['a', None]"


def _validate(*bindings: str) -> list[str]:
    gin_config.parse_config([SMOKE], list(bindings))
    return gin_config.validate_inputs()


def test_the_smoke_config_validates_without_warnings():
    assert _validate() == []


@pytest.mark.parametrize(
    ("bindings", "expected"),
    [
        (['embedding/lr_group.patterns = ["(unclosed"]'], "is not a valid regex"),
        (["AdamMultilr.strict = True", 'embedding/lr_group.patterns = ["^nothing/"]'],
         "Group 'embedding' (patterns ['^nothing/']) matched no variable"),
        (['make_strategy.kind = "gpu"'], "strategy kind 'gpu' found no GPU"),
        (["train.steps_per_loop = 3"], "must be a multiple of steps_per_loop=3"),
    ],
)  # fmt: skip
def test_values_that_need_the_objects_built_are_refused_before_the_run(bindings, expected):
    with pytest.raises(gin_config.GinConfigError) as info:
        _validate(*bindings)
    assert expected in str(info.value)
    assert "In call to configurable" not in str(info.value)


def test_a_schedule_that_turns_negative_after_step_0_is_refused_naming_the_step():
    decay = ["AdamMultilr.learning_rate = @schedules.PolynomialDecay()",
             "schedules.PolynomialDecay.initial_learning_rate = 1e-3",
             "schedules.PolynomialDecay.decay_steps = 4",
             "schedules.PolynomialDecay.end_learning_rate = -1e-3"]  # fmt: skip
    with pytest.raises(gin_config.GinConfigError, match=r"learning_rate \(PolynomialDecay\).*"
                       r"at step [1-8] it gives -"):  # fmt: skip
        _validate(*decay)


def test_a_group_schedule_is_checked_at_its_boundaries():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([5], [1e-3, -1e-4])
    assert 6 in preflight.schedule_steps(schedule, 100)
    with pytest.raises(ValueError, match="group 'head' lr .* at step 6 it gives -"):
        preflight.check_schedule(schedule, "group 'head' lr", 100)
    preflight.check_schedule(schedule, "group 'head' lr", 5)  # never reaches the bad value


def test_suspect_values_warn_and_validate():
    found = _validate("train.num_steps = 0", "train.metrics_every = 0", "train.eval_every = 0",
                      "train.checkpoint_every = 0", "encoder/lr_group.unfreeze_at = 8",
                      'embedding/lr_group.unfreeze_at = "manual"')  # fmt: skip
    assert any("train.num_steps = 0" in w for w in found)
    assert any("metrics_every = 0" in w and "(off)" in w for w in found)
    assert any("group 'encoder' unfreezes at step 8, but the run has 0 steps" in w for w in found)
    assert any("group 'embedding' has unfreeze_at 'manual'" in w for w in found)


def _records(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.isdigit()] if os.path.isdir(folder) else []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--gin_param", "train.num_steps = -5"], "train.num_steps = -5: expected a value >= 0"),
        (["--gin_param", "AdamMultilr.strict = True",
          "--gin_param", 'encoder/lr_group.patterns = ["^encodr/"]'], "matched no variable"),
        (["--seed", "-1"], "seed -1: expected an integer >= 0"),
        (["--gin_param", 'make_strategy.kind = "gpu"'], "found no GPU"),
    ],
)  # fmt: skip
def test_bad_values_exit_2_through_the_cli_with_nothing_recorded(tmp_path, args, expected):
    runs = tmp_path / "runs"
    proc = run_cli("train", SMOKE, "--observer", f"file://{runs}",
                   "--workdir", str(tmp_path / "wd"), *args)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert _records(runs) == []


@pytest.mark.slow
def test_a_suspect_value_warns_on_stderr_and_the_run_proceeds(tmp_path):
    runs = tmp_path / "runs"
    proc = run_cli("train", SMOKE, "--observer", f"file://{runs}", "--workdir",
                   str(tmp_path / "wd"), "--gin_param", "train.num_steps = 2",
                   "--gin_param", "train.metrics_every = 0", "--gin_param", "train.eval_every = 0",
                   "--gin_param", "train.checkpoint_every = 0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning: train.metrics_every = 0: no training metrics are recorded (off)" in (
        proc.stderr
    )
    assert len(_records(runs)) == 1


def test_a_schedule_that_turns_negative_mid_run_stops_the_step_naming_the_group():
    import numpy as np
    import tensorflow as tf

    from capreolus_opt import AdamMultilr

    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1], [1e-3, -1e-3])
    opt = AdamMultilr(learning_rate=1e-3, pattern_lrs=[
        {"name": "head", "patterns": ["head"], "lr": schedule}])  # fmt: skip
    head = keras.Variable(np.ones(3, np.float32), name="head")
    step = tf.function(lambda: opt.apply([tf.ones(3)], [head]))
    step()
    step()
    before = head.numpy().copy()
    with pytest.raises(tf.errors.InvalidArgumentError, match="head: a learning-rate schedule"):
        step()  # iteration 2: the rate is -1e-3
    np.testing.assert_array_equal(head.numpy(), before)  # no ascent step was applied
