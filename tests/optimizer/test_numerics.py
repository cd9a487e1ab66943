"""AdamMultilr against the float64 NumPy reference, over group layouts and features, in eager,
tf.function and XLA modes.

Two checks per run:
- the issue's bound: relative error <= 1e-6 elementwise on the float32 parameters;
- a sharper one on the total update p_final - p_initial of each variable:
  max|delta - delta_ref| <= 1e-4 * max|delta_ref| (exactly zero for frozen variables).

Why lrs <= 1e-2: float32 Adam cannot be closer than ~1e-5 relative on a step. 1 - beta_2**t
cancels (beta_2 = 0.999, t = 1..5: ~3e-8 rounding on ~1e-3), so alpha carries ~1.5e-5/t of
relative error in every float32 implementation (Keras ops and TF's fused kernel alike). Over
5 steps of lr that is ~3.4e-5 * lr absolute; with |p| >= 0.5 it stays under 1e-6 * |p| only for
lr <~ 1e-2. The update check (1e-4 relative) is what catches formula slips at this lr scale.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from tests.optimizer.helpers import (
    MODES,
    SHAPES,
    assert_rel_close,
    assert_update_close,
    dense_grads_with_sparse,
    initial_values,
    make_step,
    make_variables,
    random_grads,
    run,
    sparse_grad,
)
from tests.optimizer.numpy_adam import NumpyAdam, RefGroup

STEPS = 5
BASE_LR = 0.004

LAYOUTS = {
    "one": [{"patterns": ["encoder"], "lr": 0.01}],
    "several": [
        {"patterns": ["embedding"], "lr": 0.002},
        {"patterns": ["encoder/layer_0", "encoder/layer_1"], "lr": 0.005},
        {"patterns": "head", "lr": 0.01},
    ],
    # encoder/layer_0/* matches both groups: the first one listed must win.
    "overlap": [
        {"patterns": ["encoder/layer_0"], "lr": 0.003},
        {"patterns": ["encoder", "head/kernel"], "lr": 0.008},
    ],
    # embedding and head/bias match nothing: default group at BASE_LR.
    "unmatched": [{"patterns": [r"kernel$"], "lr": 0.006}],
    "frozen": [
        {"patterns": ["embedding", r"layer_0/bias"], "lr": 0.0},
        {"patterns": ["head"], "lr": 0.007},
    ],
}


def ref_groups(pattern_lrs: list[dict]) -> list[RefGroup]:
    out = []
    for g in pattern_lrs:
        pats = [g["patterns"]] if isinstance(g["patterns"], str) else list(g["patterns"])
        out.append(RefGroup(pats, g["lr"], g.get("weight_decay")))
    return out


def reference(init, grads, pattern_lrs, ref_lrs=None, **kwargs) -> NumpyAdam:
    groups = ref_groups(pattern_lrs)
    for group, lr in zip(groups, ref_lrs or [None] * len(groups), strict=True):
        if lr is not None:
            group.lr = lr
    accumulation = kwargs.pop("gradient_accumulation_steps", None)
    ref = NumpyAdam(
        dict(init),
        groups=groups,
        accumulation_steps=accumulation,
        **{"learning_rate": BASE_LR, **kwargs},
    )
    for g in grads:
        ref.step(g)
    return ref


def check(init, got, ref: NumpyAdam, what: str) -> None:
    assert_rel_close(got, ref.params, what=what)
    assert_update_close(init, got, ref.params, what=what)


def optimizer_state_size(opt) -> int:
    """Elements held in non-scalar optimizer variables (moments, accumulators)."""
    return sum(int(np.prod(v.shape)) for v in opt.variables if len(v.shape) > 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_group_layouts_match_reference(layout, mode):
    init, grads = initial_values(0), random_grads(STEPS, seed=1)
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=LAYOUTS[layout])
    got, _ = run(opt, init, grads, mode)
    ref = reference(init, grads, LAYOUTS[layout])
    check(init, got, ref, what=f"{layout}/{mode}: ")
    # Moments exist exactly for the trainable (non-frozen) variables: 2 slots per element.
    live = sum(int(np.prod(SHAPES[k])) for k in ref.m)
    assert optimizer_state_size(opt) == 2 * live


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["several", "frozen"])
def test_amsgrad_matches_reference(layout, mode):
    init, grads = initial_values(2), random_grads(STEPS, seed=3)
    # A large first gradient then small ones: vhat = max(vhat, v) keeps the early peak.
    grads[0] = {k: g * 20 for k, g in grads[0].items()}
    opt = AdamMultilr(learning_rate=BASE_LR, amsgrad=True, pattern_lrs=LAYOUTS[layout])
    got, _ = run(opt, init, grads, mode)
    ref = reference(init, grads, LAYOUTS[layout], amsgrad=True)
    check(init, got, ref, what=f"amsgrad {layout}/{mode}: ")
    live = sum(int(np.prod(SHAPES[k])) for k in ref.m)
    assert optimizer_state_size(opt) == 3 * live


def test_frozen_variables_are_bit_identical():
    init, grads = initial_values(4), random_grads(3, seed=5)
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=LAYOUTS["frozen"], weight_decay=0.1)
    got, _ = run(opt, init, grads, "eager")
    for name in ("embedding/embeddings", "encoder/layer_0/bias"):
        np.testing.assert_array_equal(got[name], init[name])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", ["one", "frozen"])
def test_sparse_duplicate_indices_equal_dense_gradient(layout, mode):
    init, grads = initial_values(6), random_grads(STEPS, seed=7)
    rows, cols = SHAPES["embedding/embeddings"]
    sparse = {"embedding/embeddings": [sparse_grad(rows, cols, seed=s) for s in range(STEPS)]}
    pattern_lrs = [{"patterns": ["embedding"], "lr": 0.009}, *LAYOUTS[layout]]
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=pattern_lrs)
    got, _ = run(opt, init, grads, mode, sparse=sparse)
    ref = reference(init, dense_grads_with_sparse(grads, sparse), pattern_lrs)
    check(init, got, ref, what=f"sparse {layout}/{mode}: ")


def exp_decay(initial: float, steps: float, rate: float):
    return lambda step: initial * rate ** (step / steps)


@pytest.mark.parametrize("accumulation", [None, 2])
@pytest.mark.parametrize("mode", MODES)
def test_schedules_in_groups_evaluated_at_iterations(mode, accumulation):
    # With accumulation the schedules see the micro-step counter, as Keras' base lr does.
    steps = STEPS if accumulation is None else 2 * STEPS
    init, grads = initial_values(8), random_grads(steps, seed=9)
    sched = keras.optimizers.schedules
    pattern_lrs = [
        {"patterns": ["encoder/layer_0"], "lr": sched.ExponentialDecay(0.01, 2, 0.5)},
        {"patterns": ["head"], "lr": sched.PiecewiseConstantDecay([1, 3], [0.01, 0.005, 0.002])},
        {"patterns": ["embedding"], "lr": 0.0},
    ]
    ref_lrs = [
        exp_decay(0.01, 2, 0.5),
        lambda step: 0.01 if step <= 1 else (0.005 if step <= 3 else 0.002),
        None,
    ]
    # The base lr is a schedule too; it drives the default group (encoder/layer_1).
    base = sched.ExponentialDecay(0.006, 1, 0.8)
    opt = AdamMultilr(
        learning_rate=base, pattern_lrs=pattern_lrs, gradient_accumulation_steps=accumulation
    )
    got, _ = run(opt, init, grads, mode)
    ref = reference(
        init,
        grads,
        pattern_lrs,
        ref_lrs,
        learning_rate=exp_decay(0.006, 1, 0.8),
        gradient_accumulation_steps=accumulation,
    )
    check(init, got, ref, what=f"schedules/{mode}/accumulation={accumulation}: ")


# Groups with and without their own weight decay; the base weight_decay (when set) applies,
# scaled by the variable's own group lr, to groups without one (documented in AdamMultilr).
WD_LAYOUT = [
    {"patterns": ["encoder"], "lr": 0.01, "weight_decay": 0.5},
    {"patterns": ["head/kernel"], "lr": 0.005, "weight_decay": 0.1},
    {"patterns": ["embedding"], "lr": 0.0, "weight_decay": 0.5},
    {"patterns": ["head/bias"], "lr": 0.01},
]


@pytest.mark.parametrize("base_decay", [None, 0.2])
@pytest.mark.parametrize("mode", MODES)
def test_per_group_weight_decay_scaled_by_group_lr(mode, base_decay):
    init, grads = initial_values(10), random_grads(STEPS, seed=11)
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=WD_LAYOUT, weight_decay=base_decay)
    got, _ = run(opt, init, grads, mode)
    ref = reference(init, grads, WD_LAYOUT, weight_decay=base_decay)
    check(init, got, ref, what=f"weight decay {base_decay}/{mode}: ")


def test_exclude_from_weight_decay_applies_to_group_decay():
    init, grads = initial_values(16), random_grads(STEPS, seed=17)
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=WD_LAYOUT, weight_decay=0.2)
    opt.exclude_from_weight_decay(var_names=["bias"])
    got, _ = run(opt, init, grads, "function")
    ref = reference(init, grads, WD_LAYOUT, weight_decay=0.2, exclude_from_weight_decay=["bias"])
    check(init, got, ref, what="exclude bias: ")


@pytest.mark.parametrize(
    "kwargs",
    [{"clipnorm": 0.8}, {"global_clipnorm": 1.5}, {"gradient_accumulation_steps": 3}],
    ids=["clipnorm", "global_clipnorm", "accumulation"],
)
@pytest.mark.parametrize("mode", MODES)
def test_clipping_and_accumulation_match_reference(kwargs, mode):
    init, grads = initial_values(12), random_grads(7, seed=13)
    # Huge gradients on the frozen group: if they entered global_clipnorm, every other
    # variable's step would shrink visibly.
    for g in grads:
        g["embedding/embeddings"] = g["embedding/embeddings"] * 1e3
    layout = LAYOUTS["frozen"]
    opt = AdamMultilr(learning_rate=BASE_LR, pattern_lrs=layout, **kwargs)
    got, _ = run(opt, init, grads, mode)
    ref = reference(init, grads, layout, **dict(kwargs))
    check(init, got, ref, what=f"{kwargs}/{mode}: ")
    if "gradient_accumulation_steps" in kwargs:
        # 7 calls = 2 applied updates + 1 pending micro-step.
        assert int(opt.iterations) == 2


@pytest.mark.parametrize("mode", MODES)
def test_raw_tf_variables_match_reference(mode):
    # Raw tf.Variables are matched by name without ":0" and take the same (fused) update.
    init, grads = initial_values(14), random_grads(STEPS, seed=15)
    opt = AdamMultilr(learning_rate=BASE_LR, amsgrad=True, pattern_lrs=LAYOUTS["overlap"])
    got, _ = run(opt, init, grads, mode, raw=True)
    ref = reference(init, grads, LAYOUTS["overlap"], amsgrad=True)
    check(init, got, ref, what=f"raw/{mode}: ")


# lrs, betas, decay and clip values that float32 holds exactly: Keras and TF route Python floats
# through float32 (lr variables, tf.cast(0.999, float64)), which would otherwise cap a float64
# run's agreement at ~1e-8. With them, float64 variables must match the reference to ~1e-12.
EXACT_LAYOUT = [
    {"patterns": ["encoder/layer_0"], "lr": 2.0**-7, "weight_decay": 0.125},
    {"patterns": ["encoder", "head/kernel"], "lr": 2.0**-5},
    {"patterns": ["embedding"], "lr": 0.0},
]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_float64_variables_match_reference_to_1e12(mode, fused):
    init = {k: v.astype(np.float64) for k, v in initial_values(18).items()}
    grads = [{k: g.astype(np.float64) for k, g in s.items()} for s in random_grads(6, seed=19)]
    kwargs = {"beta_1": 0.875, "beta_2": 1 - 2.0**-9, "amsgrad": True, "global_clipnorm": 1.5}
    opt = AdamMultilr(learning_rate=2.0**-6, pattern_lrs=EXACT_LAYOUT, fused=fused, **kwargs)
    got, variables = run(opt, init, grads, mode)
    assert all(v.dtype == "float64" for v in variables)
    ref = reference(init, grads, EXACT_LAYOUT, learning_rate=2.0**-6, **kwargs)
    assert_rel_close(got, ref.params, rtol=1e-12, what=f"float64/{mode}/fused={fused}: ")
    assert_update_close(init, got, ref.params, rtol=1e-10, what=f"float64/{mode}: ")


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_missing_gradient_keeps_the_other_variables_aligned(mode):
    # Keras drops None gradients before the update; the group/slot lookup must still pair every
    # remaining variable with its own group and moments.
    init, grads = initial_values(22), random_grads(STEPS, seed=23)
    missing = "encoder/layer_0/bias"
    for g in grads:
        del g[missing]
    opt = AdamMultilr(learning_rate=BASE_LR, amsgrad=True, pattern_lrs=LAYOUTS["several"])
    variables = make_variables(init)
    step = make_step(opt, variables, mode)
    with pytest.warns(UserWarning, match=f"Gradients do not exist.*{missing}"):
        for g in grads:
            step([tf.constant(g[k]) if k in g else None for k in SHAPES])
    got = {v.path: v.numpy() for v in variables}
    np.testing.assert_array_equal(got[missing], init[missing])
    ref = reference(init, grads, LAYOUTS["several"], amsgrad=True)
    check(init, got, ref, what=f"missing grad/{mode}: ")
