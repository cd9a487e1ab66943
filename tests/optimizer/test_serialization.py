"""get_config/from_config for every pattern_lrs form, Keras (de)serialisation, `.keras` files,
and tf.train.Checkpoint resume following the uninterrupted trajectory exactly."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from tests.optimizer.helpers import (
    SHAPES,
    initial_values,
    make_variables,
    random_grads,
    run,
    small_model,
)
from tests.optimizer.helpers import (
    token_data as data,
)

SCHEDULE = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)

FORMS = {
    "list of dicts": [
        {"patterns": ["encoder"], "lr": SCHEDULE, "name": "enc", "weight_decay": 0.1},
        {"patterns": "head", "lr": 0.02},
        {"patterns": ["embedding"], "lr": 0.0},
    ],
    "dict shorthand": {"encoder/layer_0": 0.003, "encoder": 0.02, "embedding": 0.0},
    "list of pairs": [("head/kernel", 0.05), ("encoder", SCHEDULE)],
    "None": None,
    "empty": [],
}


def trajectory(opt, steps=3):
    return run(opt, initial_values(30), random_grads(steps, seed=31), "function")[0]


@pytest.mark.parametrize("form", FORMS)
def test_config_round_trip(form):
    opt = AdamMultilr(learning_rate=0.01, amsgrad=True, clipnorm=2.0, pattern_lrs=FORMS[form])
    config = opt.get_config()
    json.dumps(config)  # plain JSON, schedules included
    clone = AdamMultilr.from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config
    a, b = trajectory(opt), trajectory(clone)
    for name in SHAPES:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{form}: {name}")
    assert clone.group_table().rows == opt.group_table().rows


def test_schedule_in_group_survives_round_trip():
    opt = AdamMultilr(pattern_lrs=FORMS["list of dicts"])
    clone = AdamMultilr.from_config(opt.get_config())
    clone.build(make_variables(initial_values(0)))
    lrs = clone.group_learning_rates()
    assert float(lrs["enc"]) == pytest.approx(0.05)  # SCHEDULE at step 0


def test_keras_serialize_deserialize():
    opt = AdamMultilr(learning_rate=0.01, pattern_lrs=FORMS["list of dicts"])
    payload = json.loads(json.dumps(keras.optimizers.serialize(opt)))
    clone = keras.optimizers.deserialize(payload)
    assert type(clone) is AdamMultilr
    assert clone.get_config() == opt.get_config()


def group_optimizer() -> AdamMultilr:
    return AdamMultilr(
        learning_rate=0.01,
        amsgrad=True,
        pattern_lrs=[
            {"patterns": ["embedding"], "lr": 0.03},
            {"patterns": ["encoder"], "lr": SCHEDULE},
            {"patterns": ["head/bias"], "lr": 0.0},
        ],
    )


def test_keras_model_file_save_load(tmp_path):
    x, y = data()
    model = small_model(0)
    model.compile(optimizer=group_optimizer(), loss="mse", jit_compile=False)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    model.optimizer.set_group_learning_rate("embedding", 0.007)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is AdamMultilr
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert loaded.optimizer.group_learning_rates()["embedding"] == pytest.approx(0.007)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    loaded.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)


def train_steps(model, opt, batches):
    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

    for x, y in batches:
        step(tf.constant(x), tf.constant(y, tf.float32))


@pytest.mark.parametrize("build_first", [True, False], ids=["built", "deferred"])
def test_checkpoint_resume_equals_uninterrupted(tmp_path, build_first):
    # "deferred": the fresh optimizer is restored before it has slots; TF's deferred restoration
    # must fill them when the first step builds it.
    batches = [data(seed=s) for s in range(5)]

    def fresh(seed, build=True):
        model, opt = small_model(seed), group_optimizer()
        if build:
            opt.build(model.trainable_variables)
        return model, opt

    model_a, opt_a = fresh(0)
    train_steps(model_a, opt_a, batches)

    model_b, opt_b = fresh(0)
    train_steps(model_b, opt_b, batches[:3])
    ckpt = tf.train.Checkpoint(model=model_b, optimizer=opt_b)
    saved = ckpt.save(str(tmp_path / "ckpt"))

    model_c, opt_c = fresh(1, build_first)  # different init: all must come from the checkpoint
    status = tf.train.Checkpoint(model=model_c, optimizer=opt_c).restore(saved)
    assert int(opt_c.iterations) == 3
    train_steps(model_c, opt_c, batches[3:])
    status.assert_consumed()
    for a, c in zip(model_a.weights, model_c.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), c.numpy(), err_msg=a.path)
    for a, c in zip(opt_a.variables, opt_c.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c), err_msg=a.path)


def test_checkpoint_restores_changed_group_lr(tmp_path):
    model, opt = small_model(0), group_optimizer()
    opt.build(model.trainable_variables)
    opt.set_group_learning_rate("embedding", 0.123)
    saved = tf.train.Checkpoint(optimizer=opt).save(str(tmp_path / "ckpt"))
    model2, opt2 = small_model(0), group_optimizer()
    opt2.build(model2.trainable_variables)
    tf.train.Checkpoint(optimizer=opt2).restore(saved)
    assert opt2.group_learning_rates()["embedding"] == pytest.approx(0.123)
