"""Resume across regrouping: a checkpoint restored into an optimizer whose pattern_lrs changed.

A plain restore refuses (positions would misplace state); `restore_regrouped` restores each
variable's moments by path, reports moved / appeared / vanished state, refuses to drop saved
state unless told to, and the resumed run then follows the float64 NumPy reference that carries
each variable's moments by name across the same regrouping, in eager, graph and XLA modes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from capreolus_opt.optimizer import RegroupError, keras_compat, restore_regrouped
from tests.optimizer.helpers import (
    MODES,
    assert_rel_close,
    assert_update_close,
    initial_values,
    make_step,
    make_variables,
    random_grads,
)
from tests.optimizer.numpy_adam import NumpyAdam, RefGroup

BASE_LR = 0.004
BEFORE = [  # embedding frozen for good; encoder in one group
    {"patterns": ["embedding"], "lr": 0.0, "name": "emb"},
    {"patterns": ["encoder"], "lr": 0.006, "name": "enc"},
]
AFTER = [  # embedding now trains (fresh moments); layer_0 split off; "enc" renamed "upper"
    {"patterns": ["embedding"], "lr": 0.002, "name": "emb"},
    {"patterns": ["encoder/layer_0"], "lr": 0.003, "name": "lower"},
    {"patterns": ["encoder"], "lr": 0.006, "name": "upper"},
]


def ref_groups(layout: list[dict]) -> list[RefGroup]:
    return [RefGroup(g["patterns"], g["lr"]) for g in layout]


def train(opt, variables, grads, mode):
    step = make_step(opt, variables, mode)
    for g in grads:
        step([tf.constant(x) for x in g.values()])


def saved_run(tmp_path, layout, init, grads, mode="function"):
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=layout, amsgrad=True)
    variables = make_variables(init)
    train(opt, variables, grads, mode)
    return tf.train.Checkpoint(optimizer=opt).save(str(tmp_path / "ckpt")), variables


@pytest.mark.parametrize("mode", MODES)
def test_restore_by_path_then_training_follows_reference(tmp_path, mode):
    init, grads = initial_values(70), random_grads(6, seed=71)
    path, old_vars = saved_run(tmp_path, BEFORE, init, grads[:3])
    trained = {v.path: v.numpy() for v in old_vars}

    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=AFTER, amsgrad=True)
    variables = make_variables(trained)
    opt.build(variables)
    with pytest.raises(RegroupError, match="would drop.*group_lr/enc"):  # renamed: its lr goes
        restore_regrouped(opt, path)
    report = restore_regrouped(opt, path, allow_dropped=True)
    assert int(opt.iterations) == 3
    assert ("encoder/layer_0/kernel", "enc", "lower") in report.moved
    assert ("encoder/layer_1/kernel", "enc", "upper") in report.moved
    assert "momentum/embedding/embeddings" in report.appeared
    assert "group_lr/lower" in report.appeared and report.vanished == ["group_lr/enc"]
    train(opt, variables, grads[3:], mode)

    # Independent reference: 3 steps grouped BEFORE, then AFTER with each name's moments.
    first = NumpyAdam(dict(init), learning_rate=BASE_LR, groups=ref_groups(BEFORE), amsgrad=True)
    for g in grads[:3]:
        first.step(g)
    ref = NumpyAdam(dict(first.params), learning_rate=BASE_LR, groups=ref_groups(AFTER))
    ref.amsgrad, ref.updates, ref.calls = True, first.updates, first.calls
    for name in first.m:
        ref.m[name], ref.v[name], ref.vhat[name] = first.m[name], first.v[name], first.vhat[name]
    for g in grads[3:]:
        ref.step(g)
    got = {v.path: v.numpy() for v in variables}
    assert_rel_close(got, ref.params, what=f"{mode}: ")
    assert_update_close(trained, got, ref.params, what=f"{mode}: ")


def test_moments_land_on_their_own_variable(tmp_path):
    init, grads = initial_values(72), random_grads(2, seed=73)
    path, _ = saved_run(tmp_path, BEFORE, init, grads)
    saved = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=BEFORE, amsgrad=True)
    saved_vars = make_variables(init)
    saved.build(saved_vars)
    tf.train.Checkpoint(optimizer=saved).restore(path)

    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=AFTER, amsgrad=True)
    variables = make_variables(init)
    opt.build(variables)
    restore_regrouped(opt, path, allow_dropped=True)
    for old, new in zip(saved_vars, variables, strict=True):
        i = keras_compat.variable_index(saved, old)
        j = keras_compat.variable_index(opt, new)
        for slots in ("momentum", "velocity", "velocity_hat"):
            before = keras_compat.adam_slot(saved, slots, i)
            after = keras_compat.adam_slot(opt, slots, j)
            expected = np.zeros(new.shape) if before is None else before.numpy()
            np.testing.assert_array_equal(after.numpy(), expected, err_msg=f"{new.path} {slots}")


@pytest.mark.parametrize("built", [True, False], ids=["built", "deferred"])
def test_a_plain_restore_across_regrouping_refuses(tmp_path, built):
    init, grads = initial_values(74), random_grads(2, seed=75)
    path, _ = saved_run(tmp_path, BEFORE, init, grads)
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=AFTER, amsgrad=True)
    variables = make_variables(init)
    if built:
        opt.build(variables)
    with pytest.raises(RegroupError, match=r"other optimizer groups.*restore_regrouped") as info:
        tf.train.Checkpoint(optimizer=opt).restore(path)
        opt.build(variables)  # deferred: refused when the slots are created
    # Before build only the group variables are known: the refusal names those.
    assert "group_lr/enc" in str(info.value) and "group_lr/lower" in str(info.value)
    assert "allow_dropped=True" in str(info.value)  # group_lr/enc would be dropped
    if built:
        assert "encoder/layer_0/kernel (enc -> lower)" in str(info.value)


def test_dropping_saved_moments_needs_the_switch(tmp_path):
    init, grads = initial_values(76), random_grads(2, seed=77)
    path, old_vars = saved_run(tmp_path, AFTER, init, grads)
    now_frozen = [{"patterns": ["encoder/layer_0"], "lr": 0.0, "name": "lower"}, *AFTER[2:]]
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=now_frozen, amsgrad=True)
    opt.build(make_variables(init))
    before = [v.numpy().copy() for v in opt.variables]
    with pytest.raises(RegroupError, match="would drop.*momentum/encoder/layer_0/kernel"):
        restore_regrouped(opt, path)
    for v, b in zip(opt.variables, before, strict=True):  # nothing half-restored
        np.testing.assert_array_equal(v.numpy(), b)
    report = restore_regrouped(opt, path, allow_dropped=True)
    assert "velocity/encoder/layer_0/bias" in report.vanished
    assert int(opt.iterations) == 2


def test_unchanged_groups_and_old_checkpoints_restore_plainly(tmp_path):
    init, grads = initial_values(78), random_grads(2, seed=79)
    path, _ = saved_run(tmp_path, AFTER, init, grads)
    same = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=AFTER, amsgrad=True)
    same.build(make_variables(init))
    tf.train.Checkpoint(optimizer=same).restore(path).assert_consumed()
    assert same.layout()["groups"]["encoder/layer_0/kernel"] == "lower"

    # A checkpoint without a layout (plain Keras Adam, or written before layouts existed).
    keras_opt = keras.optimizers.Adam(learning_rate=BASE_LR)
    train(keras_opt, make_variables(init), grads, "function")
    old = tf.train.Checkpoint(optimizer=keras_opt).save(str(tmp_path / "old"))
    ours = AdamMultilr(learning_rate=BASE_LR)
    ours.build(make_variables(init))
    tf.train.Checkpoint(optimizer=ours).restore(old).assert_consumed()
    assert int(ours.iterations) == 2
    with pytest.raises(RegroupError, match="no optimizer layout"):
        restore_regrouped(ours, old)


def test_restore_regrouped_refuses_a_different_model(tmp_path):
    init, grads = initial_values(80), random_grads(2, seed=81)
    path, _ = saved_run(tmp_path, AFTER, init, grads)
    other = {
        k: (np.ones((7, 3), np.float32) if k.startswith("embedding") else v)
        for k, v in init.items()
    }
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=AFTER, amsgrad=True)
    opt.build(make_variables(other))
    with pytest.raises(RegroupError, match=r"momentum/embedding/embeddings: saved shape \(6, 3\)"):
        restore_regrouped(opt, path)
    with pytest.raises(RegroupError, match="build the optimizer"):
        restore_regrouped(AdamMultilr(), path)
