"""MirroredStrategy on the two logical CPU devices (tests/conftest.py) equals one device on the
same global batches, within 1e-6, in a custom loop and in model.fit.

Why 1e-6 is loose enough: the only legitimate difference is the order in which the two
replicas' gradient halves are summed (~6e-8 relative on a gradient), which Adam turns into
~6e-8 of a step. Clipping is the case that would show a real difference: stock Keras clips each
replica's half before the sum (docs/STACK_FACTS.md §3 (d)); AdamMultilr clips the summed gradient.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from capreolus_opt.training import make_strategy
from tests.optimizer.helpers import small_model, token_data

GLOBAL_BATCH = 8
STEPS = 3
SCHEDULE = keras.optimizers.schedules.ExponentialDecay(0.02, decay_steps=1, decay_rate=0.7)
LAYOUT = [
    {"patterns": ["embedding"], "lr": 0.03},
    {"patterns": ["encoder"], "lr": SCHEDULE, "weight_decay": 0.1},
    {"patterns": ["head/bias"], "lr": 0.0},
]


def two_devices() -> tf.distribute.Strategy:
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        raise RuntimeError("tests/conftest.py should have split the CPU into two logical devices")
    # The process-wide MirroredStrategy that make_strategy caches: a second collective-op
    # MirroredStrategy over the same devices reuses collective instance keys and later fails
    # with "Shape mismatch in the collective instance 100" (TF 2.21), in whichever test comes next.
    return make_strategy("mirrored")


def dataset() -> tf.data.Dataset:
    x, y = token_data(GLOBAL_BATCH * STEPS, seed=5)
    return tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32))).batch(GLOBAL_BATCH)


def custom_loop(
    strategy: tf.distribute.Strategy, prebuild: bool = True, **kwargs
) -> list[np.ndarray]:
    with strategy.scope():
        model = small_model(0)
        opt = AdamMultilr(learning_rate=0.01, pattern_lrs=LAYOUT, **kwargs)
        if prebuild:  # otherwise the first apply inside strategy.run builds it
            opt.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        def replica(x, y):
            with tf.GradientTape() as tape:
                per_example = tf.reduce_sum(tf.square(model(x, training=True) - y), axis=1)
                # Divide by the GLOBAL batch: replica gradients are summed, not averaged.
                loss = tf.reduce_sum(per_example) / GLOBAL_BATCH
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply(grads, model.trainable_variables)

        strategy.run(replica, args=(x, y))

    for x, y in strategy.experimental_distribute_dataset(dataset()):
        step(x, y)
    return [v.numpy() for v in model.weights]


def fit(strategy: tf.distribute.Strategy, **kwargs) -> list[np.ndarray]:
    with strategy.scope():
        model = small_model(0)
        model.compile(
            optimizer=AdamMultilr(learning_rate=0.01, pattern_lrs=LAYOUT, **kwargs), loss="mse"
        )
    model.fit(dataset(), epochs=1, shuffle=False, verbose=0)
    return [v.numpy() for v in model.weights]


def assert_same(one: list, two: list) -> None:
    initial = [v.numpy() for v in small_model(0).weights]
    for a, b in zip(one, two, strict=True):
        scale = np.max(np.abs(a))
        assert np.max(np.abs(a - b)) <= 1e-6 * scale, (a, b)
    # The comparison means something only if training moved the (non-frozen) weights.
    assert sum(not np.array_equal(a, w0) for a, w0 in zip(one, initial, strict=True)) == 4


CASES = {
    "plain": {},
    "amsgrad+weight_decay": {"amsgrad": True, "weight_decay": 0.05},
    "clipnorm": {"clipnorm": 0.05},
    "global_clipnorm": {"global_clipnorm": 0.05},
}


@pytest.mark.parametrize("case", CASES)
def test_custom_loop_two_replicas_equal_one_device(case):
    one = custom_loop(tf.distribute.get_strategy(), **CASES[case])
    two = custom_loop(two_devices(), **CASES[case])
    assert_same(one, two)


@pytest.mark.parametrize("case", ["plain", "global_clipnorm"])
def test_fit_two_replicas_equal_one_device(case):
    one = fit(tf.distribute.get_strategy(), **CASES[case])
    two = fit(two_devices(), **CASES[case])
    assert_same(one, two)


def test_lazy_build_inside_the_replica_function_equals_prebuilt_and_one_device():
    # Stock Keras fails here with "You must feed a value for placeholder"
    # (docs/STACK_FACTS.md §3 (c));
    # AdamMultilr builds in a merge call, lifted out of the traced function.
    lazy = custom_loop(two_devices(), prebuild=False)
    prebuilt = custom_loop(two_devices(), prebuild=True)
    for a, b in zip(lazy, prebuilt, strict=True):
        np.testing.assert_array_equal(a, b)
    assert_same(custom_loop(tf.distribute.get_strategy(), prebuild=False), lazy)
