"""Scheduled unfreezing against the float64 NumPy reference in eager, graph and XLA modes: frozen
until step N or until `unfreeze_group`, its own Adam step count and warm-up once unfrozen,
nothing changed (params and moments) and no clip-norm share while frozen, no retrace, exact
resume across the unfreeze point, and under MirroredStrategy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from capreolus_opt.optimizer import keras_compat
from tests.optimizer.helpers import (
    MODES,
    assert_rel_close,
    assert_update_close,
    initial_values,
    make_step,
    make_variables,
    random_grads,
    small_model,
    token_data,
)
from tests.optimizer.numpy_adam import NumpyAdam, RefGroup
from tests.optimizer.test_distribution import GLOBAL_BATCH, two_devices

BASE_LR = 0.004
STEPS = 7
LAYOUT = [
    {"patterns": ["embedding"], "lr": 0.008, "name": "emb", "unfreeze_at": 2, "unfreeze_warmup": 3},
    {"patterns": ["encoder/layer_0"], "lr_mult": 2.0, "name": "low", "unfreeze_at": "manual"},
    {"patterns": ["head"], "lr": 0.006, "name": "head"},
]
MANUAL_AT = 4  # unfreeze_group("low") is called before the 5th update


def ref_groups() -> list[RefGroup]:
    return [
        RefGroup(["embedding"], lr=0.008, unfreeze_at=2, warmup=3),
        RefGroup(["encoder/layer_0"], lr_mult=2.0, unfreeze_at=MANUAL_AT),
        RefGroup(["head"], lr=0.006),
    ]


def grads_with_huge_frozen_part(steps: int, seed: int) -> list[dict]:
    grads = random_grads(steps, seed=seed)
    for g in grads:
        # If the frozen groups entered global_clipnorm, every other step would shrink visibly.
        g["embedding/embeddings"] = g["embedding/embeddings"] * 1e3
        g["encoder/layer_0/kernel"] = g["encoder/layer_0/kernel"] * 1e3
    return grads


def run_with_manual_unfreeze(opt, init, grads, mode, on_step=None):
    variables = make_variables(init)
    if on_step is not None:
        opt.build(variables)  # so that the check before the first step can read the slots
    step = make_step(opt, variables, mode)
    for i, g in enumerate(grads):
        if i == MANUAL_AT:
            opt.unfreeze_group("low")
        if on_step is not None:
            on_step(i, variables)
        step([tf.constant(g[k]) for k in init])
    if mode != "eager":
        assert step.experimental_get_tracing_count() == 1  # unfreezing needs no retrace
    return {v.path: v.numpy() for v in variables}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_unfreezing_matches_reference(mode, fused):
    init, grads = initial_values(60), grads_with_huge_frozen_part(STEPS, seed=61)
    kwargs = {"amsgrad": True, "global_clipnorm": 2.0, "weight_decay": 0.05}
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=LAYOUT, fused=fused, **kwargs)

    def frozen_groups_untouched(i, variables):
        by_path = {v.path: v for v in variables}
        for path, frozen_until in (("embedding/embeddings", 2), ("encoder/layer_0/kernel", 4)):
            if i <= frozen_until:  # before update i, the group has not trained yet
                np.testing.assert_array_equal(by_path[path].numpy(), init[path])
                index = keras_compat.variable_index(opt, by_path[path])
                for kind in ("momentum", "velocity", "velocity_hat"):
                    slot = keras_compat.adam_slot(opt, kind, index)
                    assert not np.any(slot.numpy()), f"{path} moments moved at step {i}"

    got = run_with_manual_unfreeze(opt, init, grads, mode, frozen_groups_untouched)
    ref = NumpyAdam(dict(init), learning_rate=BASE_LR, groups=ref_groups(), **kwargs)
    for g in grads:
        ref.step(g)
    what = f"{mode}/fused={fused}: "
    assert_rel_close(got, ref.params, what=what)
    assert_update_close(init, got, ref.params, what=what)


def test_reported_lrs_table_and_state():
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=LAYOUT)
    variables = make_variables(initial_values(62))
    opt.build(variables)
    rows = {r.variable: r for r in opt.group_table()}
    assert rows["embedding/embeddings"].unfreeze_at == 2
    assert rows["encoder/layer_0/kernel"].unfreeze_at == "manual"
    assert rows["head/kernel"].unfreeze_at is None
    assert "unfreeze_at" in opt.group_table().to_text().splitlines()[0]
    lrs = []
    for i, g in enumerate(random_grads(5, seed=63)):
        lrs.append(opt.group_learning_rates())
        if i == 3:
            opt.unfreeze_group("low")
            opt.unfreeze_group("low")  # idempotent
            lrs[-1] = opt.group_learning_rates()  # takes effect at once
        opt.apply([tf.constant(x) for x in g.values()], variables)
    # emb: 0 at steps 0-1, then warm-up 1/3, 2/3, 1 of 0.008; low: 0 until unfrozen after
    # 3 updates, then 2 x the base lr.
    assert [r["emb"] for r in lrs] == pytest.approx([0, 0, 0.008 / 3, 0.016 / 3, 0.008])
    assert [r["low"] for r in lrs] == pytest.approx([0, 0, 0, 2 * BASE_LR, 2 * BASE_LR])
    assert opt.group_start_steps() == {"emb": 2, "low": 3}
    assert opt.get_config()["pattern_lrs"][1]["unfreeze_at"] == 3
    assert opt.group_table().rows[1].unfreeze_at == 3


@pytest.mark.parametrize("mode", ["function", "jit"])
def test_resume_across_the_unfreeze_point_is_exact(tmp_path, mode):
    init, grads = initial_values(64), grads_with_huge_frozen_part(STEPS, seed=65)
    kwargs = {"learning_rate": BASE_LR, "pattern_lrs": LAYOUT, "global_clipnorm": 2.0}
    uninterrupted = run_with_manual_unfreeze(AdamMultilr(**kwargs), init, grads, mode)

    # Stop after 3 updates (emb unfrozen at 2 is mid-warm-up; low still frozen), resume, finish.
    opt = AdamMultilr(**kwargs)
    variables = make_variables(init)
    step = make_step(opt, variables, mode)
    for g in grads[:3]:
        step([tf.constant(g[k]) for k in init])
    saved = tf.train.Checkpoint(vars=variables, optimizer=opt).save(str(tmp_path / "ckpt"))

    fresh = AdamMultilr(**kwargs)
    restored = make_variables(initial_values(99))  # different values: all must come back
    fresh.build(restored)
    tf.train.Checkpoint(vars=restored, optimizer=fresh).restore(saved).assert_consumed()
    step = make_step(fresh, restored, mode)
    for i, g in enumerate(grads[3:], start=3):
        if i == MANUAL_AT:
            fresh.unfreeze_group("low")
        step([tf.constant(g[k]) for k in init])
    for v in restored:
        np.testing.assert_array_equal(v.numpy(), uninterrupted[v.path], err_msg=v.path)


def test_manual_unfreeze_survives_a_checkpoint(tmp_path):
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=LAYOUT)
    opt.build(make_variables(initial_values(66)))
    opt.unfreeze_group("low")
    saved = tf.train.Checkpoint(optimizer=opt).save(str(tmp_path / "ckpt"))
    fresh = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=LAYOUT)
    fresh.build(make_variables(initial_values(66)))
    tf.train.Checkpoint(optimizer=fresh).restore(saved)
    assert fresh.group_start_steps()["low"] == 0


def _mirrored_loop(strategy):
    x, y = token_data(GLOBAL_BATCH * 4, seed=7)
    data = tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32))).batch(GLOBAL_BATCH)
    layout = [
        {"patterns": ["embedding"], "lr": 0.03, "unfreeze_at": 2, "unfreeze_warmup": 2},
        {"patterns": ["encoder"], "lr": 0.01, "unfreeze_at": "manual", "name": "enc"},
    ]
    with strategy.scope():
        model = small_model(0)
        opt = AdamMultilr(learning_rate=0.01, pattern_lrs=layout, global_clipnorm=0.05)
        opt.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        def replica(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(model(x, training=True) - y)) / GLOBAL_BATCH
            opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

        strategy.run(replica, args=(x, y))

    for i, (x, y) in enumerate(strategy.experimental_distribute_dataset(data)):
        if i == 3:
            opt.unfreeze_group("enc")
        step(x, y)
    assert step.experimental_get_tracing_count() == 1
    return [v.numpy() for v in model.weights]


def test_two_replicas_equal_one_device():
    one = _mirrored_loop(tf.distribute.get_strategy())
    two = _mirrored_loop(two_devices())
    initial = [v.numpy() for v in small_model(0).weights]
    for a, b, w0 in zip(one, two, initial, strict=True):
        assert not np.array_equal(a, w0)  # every group trained by the end
        assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))


BAD = {
    "negative step": ({"unfreeze_at": -1}, r"unfreeze_at.*int >= 0\) or 'manual'.*-1"),
    "float step": ({"unfreeze_at": 2.5}, "unfreeze_at.*2.5"),
    "bad string": ({"unfreeze_at": "later"}, "'later'"),
    "warmup without schedule": ({"unfreeze_warmup": 3}, "needs 'unfreeze_at'"),
    "negative warmup": ({"unfreeze_at": 1, "unfreeze_warmup": -2}, "unfreeze_warmup.*-2"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_schedules_raise_naming_the_entry(case):
    extra, needle = BAD[case]
    with pytest.raises(ValueError, match=rf"pattern_lrs\[0\].*{needle}"):
        AdamMultilr(pattern_lrs=[{"patterns": ["a"], "lr": 0.1, **extra}])


def test_frozen_for_good_cannot_be_scheduled_and_unscheduled_groups_refuse_unfreeze():
    with pytest.raises(ValueError, match="'lr': 0.0 .*frozen for good"):
        AdamMultilr(pattern_lrs=[{"patterns": ["a"], "lr": 0.0, "unfreeze_at": 3}])
    opt = AdamMultilr(pattern_lrs=LAYOUT)
    with pytest.raises(ValueError, match="'head' has no unfreeze schedule"):
        opt.unfreeze_group("head")
    with pytest.raises(ValueError, match="Unknown group 'nope'"):
        opt.unfreeze_group("nope")


def test_config_round_trip_keeps_the_schedule():
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=LAYOUT, weight_decay=0.1)
    config = opt.get_config()
    assert config["pattern_lrs"][0]["unfreeze_at"] == 2
    assert config["pattern_lrs"][0]["unfreeze_warmup"] == 3
    assert config["pattern_lrs"][1]["unfreeze_at"] == "manual"
    clone = AdamMultilr.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
