"""Groups given as multipliers on one base learning rate (`lr_mult`) and weight decay (`wd_mult`),
against the float64 NumPy reference in eager, graph and XLA modes; multipliers change without a
retrace, survive checkpoints and configs, and show in the group table and diagnostics."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from capreolus_opt.training import diagnostics
from tests.optimizer.helpers import (
    MODES,
    assert_rel_close,
    assert_update_close,
    initial_values,
    make_step,
    make_variables,
    random_grads,
    run,
)
from tests.optimizer.numpy_adam import NumpyAdam, RefGroup

STEPS = 5
sched = keras.optimizers.schedules
# Warm-up then cosine decay: the schedule timm/mmengine users drive every group with.
WARMUP_COSINE = dict(initial_learning_rate=0.0, decay_steps=6, warmup_target=0.01, warmup_steps=2)

LAYOUT = [
    {"patterns": ["embedding"], "lr_mult": 0.1, "name": "emb", "wd_mult": 0.0},
    {"patterns": ["encoder"], "lr_mult": 0.5, "name": "enc", "wd_mult": 2.0},
    {"patterns": ["head/kernel"], "lr": 0.003, "name": "abs"},  # absolute lr beside multipliers
]


def cosine_ref(step: int) -> float:
    # Keras' CosineDecay with warm-up, from its documented formula (not from its code).
    w, target, d = WARMUP_COSINE["warmup_steps"], WARMUP_COSINE["warmup_target"], 6
    if step < w:
        return target * step / w
    t = min(step - w, d)
    return target * 0.5 * (1 + np.cos(np.pi * t / d))


def ref_groups() -> list[RefGroup]:
    return [
        RefGroup(["embedding"], lr_mult=0.1, wd_mult=0.0),
        RefGroup(["encoder"], lr_mult=0.5, wd_mult=2.0),
        RefGroup(["head/kernel"], lr=0.003),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("base", ["float", "schedule"])
def test_multipliers_on_one_base_match_reference(mode, base):
    init, grads = initial_values(50), random_grads(STEPS, seed=51)
    lr = sched.CosineDecay(**WARMUP_COSINE) if base == "schedule" else 0.008
    opt = AdamMultilr(learning_rate=lr, pattern_lrs=LAYOUT, weight_decay=0.05, amsgrad=True)
    got, _ = run(opt, init, grads, mode)
    ref = NumpyAdam(
        dict(init),
        learning_rate=cosine_ref if base == "schedule" else 0.008,
        groups=ref_groups(),
        weight_decay=0.05,
        amsgrad=True,
    )
    for g in grads:
        ref.step(g)
    assert_rel_close(got, ref.params, what=f"{base}/{mode}: ")
    assert_update_close(init, got, ref.params, what=f"{base}/{mode}: ")


@pytest.mark.parametrize("mode", MODES)
def test_changing_multipliers_mid_run_needs_no_retrace(mode):
    init, grads = initial_values(52), random_grads(6, seed=53)
    opt = AdamMultilr(learning_rate=0.006, pattern_lrs=LAYOUT, weight_decay=0.05)
    variables = make_variables(init)
    step = make_step(opt, variables, mode)
    ref = NumpyAdam(dict(init), learning_rate=0.006, groups=ref_groups(), weight_decay=0.05)
    for i, g in enumerate(grads):
        if i == 3:
            opt.set_group_lr_mult("enc", 1.5)
            opt.set_group_wd_mult("enc", 0.25)
            opt.set_group_lr_mult("emb", 0.0)  # a zero multiplier stops the steps, not the moments
            ref.groups[1].lr_mult, ref.groups[1].wd_mult = 1.5, 0.25
            ref.groups[0].lr_mult = 0.0
        step([tf.constant(g[k]) for k in init])
        ref.step(g)
    if mode != "eager":
        assert step.experimental_get_tracing_count() == 1
    got = {v.path: v.numpy() for v in variables}
    assert_rel_close(got, ref.params, what=f"{mode}: ")
    assert_update_close(init, got, ref.params, what=f"{mode}: ")
    assert opt.group_multipliers() == {
        "emb": {"lr_mult": 0.0, "wd_mult": 0.0},
        "enc": {"lr_mult": 1.5, "wd_mult": 0.25},
    }


def test_group_learning_rates_table_and_diagnostics_show_base_times_multiplier():
    opt = AdamMultilr(
        learning_rate=sched.CosineDecay(**WARMUP_COSINE), pattern_lrs=LAYOUT, weight_decay=0.1
    )
    variables = make_variables(initial_values(54))
    opt.build(variables)
    for g in random_grads(3, seed=55):
        opt.apply([tf.constant(x) for x in g.values()], variables)
    expected = cosine_ref(3)
    lrs = opt.group_learning_rates()
    assert lrs["enc"] == pytest.approx(0.5 * expected, rel=1e-6)
    assert lrs["emb"] == pytest.approx(0.1 * expected, rel=1e-6)
    assert lrs["abs"] == pytest.approx(0.003)
    assert lrs["default"] == pytest.approx(expected, rel=1e-6)

    rows = {r.variable: r for r in opt.group_table()}
    assert rows["encoder/layer_0/kernel"].lr_mult == 0.5
    assert rows["encoder/layer_0/kernel"].lr == pytest.approx(0.5 * expected, rel=1e-6)
    assert rows["head/kernel"].lr_mult is None
    text = opt.group_table().to_text()
    assert text.splitlines()[0].split() == [
        "variable", "shape", "params", "group", "pattern", "lr", "lr_mult", "wd_mult"
    ]  # fmt: skip
    assert "lr_mult" in opt.group_table().to_csv().splitlines()[0]
    assert "lr_mult" not in rows["head/kernel"].to_record()

    # The per-group diagnostics read the same rates inside the traced step.
    index = diagnostics.resolve_group_index(opt, variables)
    traced = tf.function(lambda: diagnostics.group_learning_rates(opt, index))()
    for name in opt.group_names:
        assert float(traced[name]) == pytest.approx(lrs[name], rel=1e-6), name


def test_a_table_without_multipliers_keeps_its_columns():
    opt = AdamMultilr(pattern_lrs={"encoder": 0.01})
    opt.build(make_variables(initial_values(0)))
    assert opt.group_table().to_text().splitlines()[0].split()[-1] == "lr"
    assert opt.group_table().to_csv().splitlines()[0] == "variable,shape,params,group,pattern,lr"


def test_multipliers_survive_config_and_checkpoint(tmp_path):
    opt = AdamMultilr(learning_rate=0.01, pattern_lrs=LAYOUT, weight_decay=0.1)
    opt.build(make_variables(initial_values(56)))
    opt.set_group_lr_mult("enc", 0.75)
    opt.set_group_wd_mult("emb", 3.0)
    clone = AdamMultilr.from_config(opt.get_config())
    clone.build(make_variables(initial_values(56)))
    assert clone.group_multipliers() == opt.group_multipliers()

    saved = tf.train.Checkpoint(optimizer=opt).save(str(tmp_path / "ckpt"))
    fresh = AdamMultilr(learning_rate=0.01, pattern_lrs=LAYOUT, weight_decay=0.1)
    fresh.build(make_variables(initial_values(56)))
    tf.train.Checkpoint(optimizer=fresh).restore(saved).assert_consumed()
    assert fresh.group_multipliers()["enc"]["lr_mult"] == 0.75
    assert fresh.group_multipliers()["emb"]["wd_mult"] == 3.0


BAD = {
    "lr and lr_mult": ({"patterns": ["a"], "lr": 0.1, "lr_mult": 0.5}, ValueError, "exactly one"),
    "neither": ({"patterns": ["a"]}, ValueError, "exactly one of the keys 'lr'"),
    "negative lr_mult": ({"patterns": ["a"], "lr_mult": -1.0}, ValueError, "lr_mult.*-1.0"),
    "nan wd_mult": (
        {"patterns": ["a"], "lr_mult": 1.0, "wd_mult": float("nan")},
        ValueError,
        "nan",
    ),
    "schedule as lr_mult": (
        {"patterns": ["a"], "lr_mult": sched.ExponentialDecay(1.0, 2, 0.5)},
        TypeError,
        "base learning_rate",
    ),
    "wd and wd_mult": (
        {"patterns": ["a"], "lr": 0.1, "weight_decay": 0.1, "wd_mult": 2.0},
        ValueError,
        "not both",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_multipliers_raise_naming_the_entry(case):
    entry, error, needle = BAD[case]
    with pytest.raises(error, match=needle):
        AdamMultilr(pattern_lrs=[entry], weight_decay=0.1)


def test_wd_mult_without_a_base_weight_decay_is_an_error():
    with pytest.raises(ValueError, match=r"pattern_lrs\[0\]\['wd_mult'\].*weight_decay.*None"):
        AdamMultilr(pattern_lrs=[{"patterns": ["a"], "lr_mult": 1.0, "wd_mult": 2.0}])


def test_setters_name_the_group_and_the_fix():
    opt = AdamMultilr(pattern_lrs=LAYOUT, weight_decay=0.1)
    with pytest.raises(ValueError, match=r"set_group_lr_mult\('enc'"):
        opt.set_group_learning_rate("enc", 0.1)
    with pytest.raises(ValueError, match="'abs' has no 'lr_mult'"):
        opt.set_group_lr_mult("abs", 2.0)
    with pytest.raises(ValueError, match=r"set_group_lr_mult\('enc', value\).*nan"):
        opt.set_group_lr_mult("enc", float("nan"))
    with pytest.raises(ValueError, match="Unknown group 'nope'"):
        opt.set_group_wd_mult("nope", 1.0)
