"""Shared fixtures-as-functions for the optimizer tests: variables, gradients and step runners."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tests.optimizer.numpy_adam import dense_from_slices

MODES = ("eager", "function", "jit")

# Variables of a small encoder + head, named like keras paths; values are kept away from zero
# (|p| in [0.5, 1.5]) so an elementwise relative error is meaningful for every entry.
SHAPES: dict[str, tuple[int, ...]] = {
    "embedding/embeddings": (6, 3),
    "encoder/layer_0/kernel": (3, 4),
    "encoder/layer_0/bias": (4,),
    "encoder/layer_1/kernel": (4, 4),
    "head/kernel": (4, 2),
    "head/bias": (2,),
}


def initial_values(seed: int = 0, shapes: dict[str, tuple[int, ...]] = SHAPES) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        mag = rng.uniform(0.5, 1.5, size=shape)
        out[name] = (mag * rng.choice([-1.0, 1.0], size=shape)).astype(np.float32)
    return out


def make_variables(values: dict[str, np.ndarray]) -> list[keras.Variable]:
    """keras.Variables whose ``path`` is exactly the dict key (nested name scopes)."""
    out = []
    for name, value in values.items():
        *scopes, leaf = name.split("/")
        make = lambda v=value, n=leaf: keras.Variable(v, name=n, dtype=str(v.dtype))  # noqa: E731
        out.append(_in_scopes(scopes, make))
        if out[-1].path != name:
            raise RuntimeError(f"test setup: path {out[-1].path!r} != {name!r}")
    return out


def _in_scopes(scopes: Sequence[str], fn: Callable):
    if not scopes:
        return fn()
    with keras.name_scope(scopes[0]):
        return _in_scopes(scopes[1:], fn)


def random_grads(
    steps: int, seed: int = 1, shapes: dict[str, tuple[int, ...]] = SHAPES
) -> list[dict[str, np.ndarray]]:
    """float32 gradients whose scale varies by variable and step (so clipping bites sometimes)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        out.append(
            {
                k: (rng.normal(size=s) * rng.uniform(0.05, 3.0)).astype(np.float32)
                for k, s in shapes.items()
            }
        )
    return out


def sparse_grad(rows: int, cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and indices of an embedding gradient with repeated ids (like a token batch)."""
    rng = np.random.default_rng(seed)
    indices = np.array([1, 4, 1, 0, 4, 1], dtype=np.int32) % rows
    rng.shuffle(indices)
    values = rng.normal(size=(len(indices), cols)).astype(np.float32)
    return values, indices


def make_step(opt: keras.optimizers.Optimizer, variables: list, mode: str) -> Callable:
    """A callable applying one list of gradients, in eager, tf.function or XLA mode."""

    def apply(grads):
        opt.apply(grads, variables)

    if mode == "eager":
        return apply
    if not opt.built:
        # Building inside the traced function is what the strategy tests forbid; do it up front.
        opt.build(variables)
    if mode == "function":
        return tf.function(apply)
    if mode == "jit":
        return tf.function(apply, jit_compile=True)
    raise ValueError(f"unknown mode {mode!r}")


def run(
    opt: keras.optimizers.Optimizer,
    init: dict[str, np.ndarray],
    grads_seq: Sequence[dict[str, np.ndarray]],
    mode: str,
    sparse: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    raw: bool = False,
) -> tuple[dict[str, np.ndarray], list]:
    """Apply ``grads_seq`` with ``opt`` to fresh variables; return final values and variables.

    ``sparse`` maps a variable name to a list of (values, indices) per step, sent as
    ``tf.IndexedSlices`` instead of the dense gradient of that name. ``raw`` uses plain
    ``tf.Variable``s named like the keys (as a Hugging Face TF model has) instead of Keras ones.
    """
    if raw:
        variables = [tf.Variable(v, name=n) for n, v in init.items()]
    else:
        variables = make_variables(init)
    step = make_step(opt, variables, mode)
    names = list(init)
    for i, grads in enumerate(grads_seq):
        tensors = []
        for name, var in zip(names, variables, strict=True):
            if sparse and name in sparse:
                values, indices = sparse[name][i]
                tensors.append(
                    tf.IndexedSlices(
                        tf.constant(values), tf.constant(indices), tf.constant(var.shape)
                    )
                )
            else:
                tensors.append(tf.constant(grads[name]))
        step(tensors)
    if mode != "eager" and step.experimental_get_tracing_count() != 1:
        raise AssertionError(f"the {mode} step was traced {step.experimental_get_tracing_count()}x")
    return {n: v.numpy() for n, v in zip(names, variables, strict=True)}, variables


def dense_grads_with_sparse(
    grads_seq: Sequence[dict[str, np.ndarray]],
    sparse: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    shapes: dict[str, tuple[int, ...]] = SHAPES,
) -> list[dict[str, np.ndarray]]:
    """``grads_seq`` with the sparse entries replaced by the dense gradient they stand for."""
    out = []
    for i, grads in enumerate(grads_seq):
        g = dict(grads)
        for name, per_step in sparse.items():
            g[name] = dense_from_slices(*per_step[i], shapes[name])
        out.append(g)
    return out


def assert_rel_close(actual: dict, expected: dict, rtol: float = 1e-6, what: str = "") -> None:
    """Elementwise |actual - expected| <= rtol * |expected| for every variable."""
    for name, exp in expected.items():
        act = np.asarray(actual[name], dtype=np.float64)
        rel = np.max(np.abs(act - exp) / np.abs(exp))
        if not rel <= rtol:
            raise AssertionError(f"{what}{name}: max relative error {rel:.3g} > {rtol:g}")


def assert_update_close(
    init: dict, actual: dict, expected: dict, rtol: float = 1e-4, what: str = ""
) -> None:
    """Per variable, max|delta - delta_ref| <= rtol * max|delta_ref|; delta = final - initial.

    A frozen variable (delta_ref == 0) must not have moved at all.
    """
    for name, exp in expected.items():
        start = np.asarray(init[name], dtype=np.float64)
        d_ref = exp - start
        d_act = np.asarray(actual[name], dtype=np.float64) - start
        err, scale = np.max(np.abs(d_act - d_ref)), np.max(np.abs(d_ref))
        if not err <= rtol * scale:
            raise AssertionError(
                f"{what}{name}: update error {err:.3g} > {rtol:g} * max|update| ({scale:.3g})"
            )


def small_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=(3,), dtype="int32"),
            keras.layers.Embedding(10, 4, name="embedding"),
            keras.layers.Flatten(),
            keras.layers.Dense(5, activation="tanh", name="encoder"),
            keras.layers.Dense(1, name="head"),
        ]
    )


def token_data(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Repeated token ids: the embedding gradient is an IndexedSlices with duplicates.
    return rng.integers(0, 4, size=(n, 3)).astype(np.int32), rng.normal(size=(n, 1))
