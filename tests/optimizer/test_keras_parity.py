"""With no groups AdamMultilr is Keras Adam: bit for bit on the keras.ops path (`fused=False`),
within 1e-6 relative on the parameters with TF's fused kernel (the default outside XLA)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from capreolus_opt import AdamMultilr
from tests.optimizer.helpers import (
    SHAPES,
    assert_rel_close,
    initial_values,
    random_grads,
    run,
    token_data,
)

# Options combined so each run exercises several code paths (Keras allows one clip at a time).
OPTIONS = {
    "plain": {},
    "weight_decay": {"weight_decay": 0.05},
    "amsgrad+weight_decay+clipnorm": {"amsgrad": True, "weight_decay": 0.05, "clipnorm": 0.8},
    "global_clipnorm+accumulation": {"global_clipnorm": 1.5, "gradient_accumulation_steps": 2},
    "clipvalue": {"clipvalue": 0.5},
    # Overwriting every 3rd step makes the EMA visible in the 4-step trajectory.
    "ema": {"use_ema": True, "ema_momentum": 0.5, "ema_overwrite_frequency": 3},
}
# XLA compiles two optimizers per case (~2-5 s on a shared 2-core machine): two cases suffice.
UNFUSED_CASES = [(o, m) for o in OPTIONS for m in ("eager", "function")] + [
    ("plain", "jit"),
    ("amsgrad+weight_decay+clipnorm", "jit"),
]


def both(kwargs, mode, steps=4, **ours):
    init, grads = initial_values(40), random_grads(steps, seed=41)
    base = {"learning_rate": 0.01, **kwargs}
    keras_out, _ = run(keras.optimizers.Adam(**base), init, grads, mode)
    ours_out, _ = run(AdamMultilr(**base, **ours), init, grads, mode)
    return keras_out, ours_out


@pytest.mark.parametrize("option, mode", UNFUSED_CASES)
def test_no_groups_unfused_is_bit_exact(option, mode):
    expected, got = both(OPTIONS[option], mode, fused=False)
    for name in SHAPES:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=f"{option}/{mode}")


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_no_groups_fused_within_1e6(option, mode):
    expected, got = both(OPTIONS[option], mode, steps=6)
    assert_rel_close(got, expected, what=f"{option}/{mode}: ")


@pytest.mark.parametrize("mode", ["eager", "function"])  # XLA: covered above, and slow
def test_groups_at_the_base_lr_change_nothing(mode):
    # Groups that all carry the base lr must not perturb a single bit of Keras Adam's result.
    same = [{"patterns": ["encoder"], "lr": 0.01}, {"patterns": ["head", "embedding"], "lr": 0.01}]
    expected, got = both({"amsgrad": True}, mode, fused=False, pattern_lrs=same)
    for name in SHAPES:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=mode)


def test_fused_flag_round_trips_in_config():
    config = AdamMultilr(fused=False).get_config()
    assert config["fused"] is False
    assert AdamMultilr.from_config(config).get_config()["fused"] is False


def test_loss_scale_optimizer_wraps_adam_multilr():
    # A power-of-two loss scale is undone exactly, so the wrapped run equals the plain one.
    init, grads = initial_values(42), random_grads(3, seed=43)
    layout = {"encoder": 0.005, "embedding": 0.0}
    plain, _ = run(AdamMultilr(learning_rate=0.01, pattern_lrs=layout), init, grads, "function")
    inner = AdamMultilr(learning_rate=0.01, pattern_lrs=layout)
    scaled = keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**10)
    scaled_grads = [{k: g * np.float32(2.0**10) for k, g in step.items()} for step in grads]
    got, _ = run(scaled, init, scaled_grads, "function")
    for name in SHAPES:
        np.testing.assert_array_equal(got[name], plain[name], err_msg=name)


def mixed_model(policy: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(shape=(3,), dtype="int32"),
            keras.layers.Embedding(10, 4, name="embedding", dtype=policy),
            keras.layers.Flatten(dtype=policy),
            keras.layers.Dense(5, activation="tanh", name="encoder", dtype=policy),
            keras.layers.Dense(1, name="head", dtype="float32"),
        ]
    )


def test_mixed_precision_fit_follows_float32_run():
    # float16 compute changes gradients by ~1e-3 relative; Adam's normalised steps then differ
    # by a small fraction of a step. A wrong group lr (0.003 vs 0.01) would differ by ~70%.
    x, y = token_data(16, seed=3)
    layout = [{"patterns": ["embedding"], "lr": 0.0}, {"patterns": ["encoder"], "lr": 0.003}]
    runs = {}
    for policy in ("float32", "mixed_float16"):
        model = mixed_model(policy)
        initial = [w.numpy() for w in model.weights]
        opt = AdamMultilr(learning_rate=0.01, pattern_lrs=layout)
        if policy == "mixed_float16":
            # A modest scale: an overflow would skip a step (dynamic scaling), not what we test.
            opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=2.0**7)
        model.compile(optimizer=opt, loss="mse", jit_compile=False)
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        runs[policy] = [w.numpy() for w in model.weights]
        assert all(w.dtype == "float32" for w in model.weights)
    np.testing.assert_array_equal(runs["mixed_float16"][0], initial[0])  # frozen embedding
    for w32, w16, w0 in zip(
        runs["float32"][1:], runs["mixed_float16"][1:], initial[1:], strict=True
    ):
        step = np.max(np.abs(w32 - w0))
        assert step > 0 and np.max(np.abs(w16 - w32)) <= 0.05 * step
