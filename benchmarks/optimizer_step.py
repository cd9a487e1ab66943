"""Optimizer-step benchmark: AdamMultilr vs keras Adam vs keras MultiOptimizer.

    .venv/bin/python benchmarks/optimizer_step.py            # full run (~10 min on 2 cores)
    .venv/bin/python benchmarks/optimizer_step.py --quick    # short run (~2 min)

Times only the optimizer step (`apply` on fixed gradients) in one process. The optimizers'
steps are interleaved (one step of each, in turn, repeated) and the median is reported, because
absolute times on shared machines drift. Cases (issue 2): (a) ~27M parameters in 13 variables,
(b) 200 small variables; eager, `tf.function` (graph) and `jit_compile=True` (xla); amsgrad off
and on. AdamMultilr has 3 groups (2 patterns + default); MultiOptimizer maps the same patterns
to 3 Adam instances.

Bandwidth: `tf.Variable.assign_add` over 2 x 256 MiB (beyond the L3), with TF's default thread
pool (all cores), timed inside each case's rotation: bytes = read var + read addend + write var.
The floor of an fp32 Adam step is 28 B/param (read p, g, m, v; write p, m, v), 36 with amsgrad
(v_hat read and written).
`B/param` below = time x bandwidth / params: the memory traffic the step would have moved had it
streamed at the measured bandwidth the whole time; `floor x` = time / (floor bytes / bandwidth).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from capreolus_opt.optimizer import AdamMultilr

LR_EMB, LR_LOW, LR_BASE = 1e-4, 5e-4, 1e-3
tf.get_logger().setLevel("ERROR")  # one tf.function per optimizer trips TF's retracing warning


def layout(case: str) -> list[tuple[str, tuple[int, ...]]]:
    """(path, shape) of each variable: case a = 27.2M params in 13 variables, b = 200 small."""
    if case == "a":
        return [("embedding/embeddings", (30000, 384))] + [
            (f"layer_{i}/kernel", (1024, 1280)) for i in range(12)
        ]
    return [("embedding/embeddings", (512, 32))] + [
        (f"layer_{i // 2}/{'kernel' if i % 2 == 0 else 'bias'}", (64, 32) if i % 2 == 0 else (32,))
        for i in range(199)
    ]


def make_variables(case: str, seed: int = 0) -> list[keras.Variable]:
    rng = np.random.default_rng(seed)
    variables = []
    for path, shape in layout(case):
        scope, name = path.split("/")
        with keras.name_scope(scope):
            value = rng.standard_normal(shape, dtype=np.float32)
            variables.append(keras.Variable(value, name=name))
    return variables


def make_optimizer(kind: str, amsgrad: bool) -> keras.optimizers.Optimizer:
    if kind in ("keras Adam", "keras Adam #2"):
        return keras.optimizers.Adam(LR_BASE, amsgrad=amsgrad)
    if kind == "MultiOptimizer":
        return keras.optimizers.MultiOptimizer(
            keras.optimizers.OptimizerMap(
                keras.optimizers.Adam(LR_BASE, amsgrad=amsgrad),
                {
                    "embedding/.*": keras.optimizers.Adam(LR_EMB, amsgrad=amsgrad),
                    "layer_[0-5]/.*": keras.optimizers.Adam(LR_LOW, amsgrad=amsgrad),
                },
            )
        )
    return AdamMultilr(
        LR_BASE, amsgrad=amsgrad, pattern_lrs={r"^embedding/": LR_EMB, r"^layer_[0-5]/": LR_LOW}
    )


def step_function(opt, variables, mode: str) -> Callable[[list[tf.Tensor]], None]:
    opt.build(variables)
    if mode == "eager":
        return lambda grads: opt.apply(grads, variables)
    fn = tf.function(lambda grads: opt.apply(grads, variables), jit_compile=(mode == "xla"))
    return fn


class BandwidthProbe:
    """`assign_add` over 64M floats (2 x 256 MiB, beyond the L3 with the addend): 768 MiB moved.

    Run inside the interleaved rotation of every case, so that it sees the same contention as the
    optimizers on this shared machine."""

    def __init__(self) -> None:
        self.n = 64 * 1024 * 1024
        self.var = tf.Variable(tf.zeros([self.n], tf.float32))
        self.addend = tf.ones([self.n], tf.float32)

    def __call__(self, _grads: object) -> None:
        self.var.assign_add(self.addend)
        _ = self.var[0].numpy()  # wait for the kernel

    def bandwidth(self, seconds: float) -> float:
        return 3 * 4 * self.n / seconds


def bench_case(case: str, mode: str, amsgrad: bool, repeats: int, kinds: list[str]) -> dict:
    grads_np = [
        np.random.default_rng(100 + i).standard_normal(shape, dtype=np.float32) * 1e-2
        for i, (_, shape) in enumerate(layout(case))
    ]
    grads = [tf.constant(g) for g in grads_np]
    probe = BandwidthProbe()
    runners = {"bandwidth": probe}
    for kind in kinds:
        variables = make_variables(case)
        opt = make_optimizer(kind, amsgrad)
        fn = step_function(opt, variables, mode)
        runners[kind] = fn
    for fn in runners.values():
        for _ in range(2):  # trace / compile and warm caches
            fn(grads)
    times: dict[str, list[float]] = {kind: [] for kind in runners}
    names = list(runners)
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]  # alternate order against drift
        for kind in order:
            start = time.perf_counter()
            runners[kind](grads)
            times[kind].append(time.perf_counter() - start)
    result = {kind: statistics.median(ts) for kind, ts in times.items()}
    result["bandwidth"] = probe.bandwidth(result["bandwidth"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and cases (~2 min)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (7 if args.quick else 21)
    # "keras Adam #2" is a second, identical Keras Adam: its ratio to the first is the noise.
    kinds = ["keras Adam", "MultiOptimizer", "AdamMultilr", "keras Adam #2"]
    cases = [
        (case, mode, ams)
        for case in ("a", "b")
        for mode in ("eager", "graph", "xla")
        for ams in (False, True)
        if not (args.quick and ams and case == "b")
    ]
    print(f"TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    print("GB/s: assign_add bandwidth measured within each case's rotation (all cores)")
    print(f"median of {repeats} interleaved steps; ratios vs keras Adam (vs MultiOptimizer)")
    print("noise: a second identical keras Adam / the first (1.00x on a quiet machine)\n")
    header = (
        f"{'case':<5}{'mode':<7}{'ams':<5}{'keras ms':>9}{'multi ms':>9}{'ours ms':>9}"
        f"{'ours/keras':>11}{'ours/multi':>11}{'noise':>7}{'GB/s':>6}{'B/param':>9}{'floor x':>8}"
    )
    print(header)
    print("-" * len(header))
    for case, mode, ams in cases:
        t = bench_case(case, mode, ams, repeats, kinds)
        params = sum(int(np.prod(s)) for _, s in layout(case))
        floor_bytes = 36 if ams else 28
        ours, bandwidth = t["AdamMultilr"], t["bandwidth"]
        achieved = ours * bandwidth / params
        print(
            f"{case:<5}{mode:<7}{'on' if ams else 'off':<5}"
            f"{t['keras Adam'] * 1e3:>9.2f}{t['MultiOptimizer'] * 1e3:>9.2f}{ours * 1e3:>9.2f}"
            f"{ours / t['keras Adam']:>10.2f}x{ours / t['MultiOptimizer']:>10.2f}x"
            f"{t['keras Adam #2'] / t['keras Adam']:>6.2f}x"
            f"{bandwidth / 1e9:>6.1f}{achieved:>9.1f}{achieved / floor_bytes:>7.2f}x",
            flush=True,
        )
    print("\ncase a: 27.2M params / 13 variables; case b: 0.2M params / 200 variables")


if __name__ == "__main__":
    main()
