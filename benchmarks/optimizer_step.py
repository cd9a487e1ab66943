"""Optimizer-step benchmark: AdamMultilr vs keras Adam, MultiOptimizer and PyTorch's fused Adam.

    .venv/bin/python benchmarks/optimizer_step.py            # full run (~15 min on 2 cores)
    .venv/bin/python benchmarks/optimizer_step.py --quick    # short run (~3 min)
    .venv/bin/python benchmarks/optimizer_step.py --quick --case a   # case (a) only

Times only the optimizer step (`apply` on fixed gradients) in one process. The optimizers'
steps are interleaved (one step of each, in turn, repeated) and the median is reported, because
absolute times on shared machines drift. Cases: (a) ~27M parameters in 13 variables,
(b) 200 small variables; eager, `tf.function` (graph) and `jit_compile=True` (xla); amsgrad off
and on. AdamMultilr has 3 groups (2 patterns + default); MultiOptimizer maps the same patterns
to 3 Adam instances. "AdamMultilr tf" is AdamMultilr on TF's ResourceApplyAdam kernels
(CAPREOLUS_OPT_ADAM_KERNEL=tf while it traces: the path before the one-pass op, and its fallback).

PyTorch (optional, the `bench` extra): `torch.optim.Adam(..., fused=True)` on CPU tensors of the
same shapes, values and 3 param groups, stepped in the same rotation; it has no graph/XLA modes,
so every row times the same eager step. Its `eps` is Algorithm 1's (ours is epsilon-hat): the
same work per element, so the timing comparison is fair.

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

from capreolus_opt.optimizer import AdamMultilr, kernel

try:
    import torch
except ImportError:  # the `bench` extra is optional
    torch = None

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


def torch_step(case: str, amsgrad: bool) -> Callable[[object], None]:
    """PyTorch's fused CPU Adam over the same variables (values, gradients, 3 groups)."""
    params = [
        torch.nn.Parameter(torch.from_numpy(np.array(v.numpy()))) for v in make_variables(case)
    ]
    for i, (p, (_, shape)) in enumerate(zip(params, layout(case), strict=True)):
        grad = np.random.default_rng(100 + i).standard_normal(shape, dtype=np.float32) * 1e-2
        p.grad = torch.from_numpy(grad)
    paths = [path for path, _ in layout(case)]
    emb = [p for p, n in zip(params, paths, strict=True) if n.startswith("embedding/")]
    low = [p for p, n in zip(params, paths, strict=True) if n.split("/")[0] in LOW_SCOPES]
    rest = [p for p in params if all(p is not q for q in emb + low)]
    groups = [{"params": emb, "lr": LR_EMB}, {"params": low, "lr": LR_LOW}, {"params": rest}]
    opt = torch.optim.Adam(groups, lr=LR_BASE, eps=1e-7, amsgrad=amsgrad, fused=True)
    return lambda _grads: opt.step()


LOW_SCOPES = {f"layer_{i}" for i in range(6)}


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
    return AdamMultilr(  # "AdamMultilr" and "AdamMultilr tf"
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
        if kind == "torch":
            runners[kind] = torch_step(case, amsgrad)
            continue
        variables = make_variables(case)
        opt = make_optimizer(kind, amsgrad)
        fn = step_function(opt, variables, mode)
        runners[kind] = fn
    for kind, fn in runners.items():
        # The kernel is chosen while the step traces (its first call), eager mode included.
        os.environ[kernel.ENV_MODE] = "tf" if kind == "AdamMultilr tf" else "auto"
        for _ in range(2):  # trace / compile and warm caches
            fn(grads)
    os.environ[kernel.ENV_MODE] = "auto"
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
    parser.add_argument("--quick", action="store_true", help="fewer repeats and cases (~3 min)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--case", choices=["a", "b"], action="append", help="only these cases")
    parser.add_argument(
        "--mode", choices=["eager", "graph", "xla"], action="append", help="only these modes"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads for TF and torch (default: all cores); 1 is steadier under load",
    )
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    repeats = args.repeats or (7 if args.quick else 21)
    # "keras Adam #2" is a second, identical Keras Adam: its ratio to the first is the noise.
    kinds = ["keras Adam", "MultiOptimizer", "AdamMultilr tf", "AdamMultilr", "keras Adam #2"]
    if torch is not None:
        kinds.append("torch")
    cases = [
        (case, mode, ams)
        for case in args.case or ("a", "b")
        for mode in args.mode or ("eager", "graph", "xla")
        for ams in (False, True)
        if not (args.quick and ams and case == "b")
    ]
    versions = f"torch {torch.__version__}" if torch is not None else "no torch (bench extra)"
    threads = args.threads or os.cpu_count()
    print(f"TF {tf.__version__}, Keras {keras.__version__}, {versions}, {threads} threads")
    print("GB/s: assign_add bandwidth measured within each case's rotation (same threads)")
    print(f"median of {repeats} interleaved steps; ratios of ours (AdamMultilr) to each baseline")
    print("tf kern: AdamMultilr on TF's ResourceApplyAdam kernels (before the one-pass op)")
    print("noise: a second identical keras Adam / the first (1.00x on a quiet machine)\n")
    header = (
        f"{'case':<5}{'mode':<6}{'ams':<4}{'keras':>8}{'multi':>8}{'tf kern':>8}{'ours':>8}"
        f"{'torch':>8}{'/keras':>8}{'/tf kern':>9}{'/torch':>8}{'noise':>7}{'GB/s':>6}"
        f"{'B/param':>8}{'floor x':>8}"
    )
    print(header)
    print("-" * len(header))
    for case, mode, ams in cases:
        print_row(case, mode, ams, bench_case(case, mode, ams, repeats, kinds))
    print("\ntimes in ms; case a: 27.2M params / 13 variables; case b: 0.2M params / 200 variables")


def print_row(case: str, mode: str, ams: bool, t: dict) -> None:
    params = sum(int(np.prod(s)) for _, s in layout(case))
    floor_bytes = 36 if ams else 28
    ours, bandwidth = t["AdamMultilr"], t["bandwidth"]
    achieved = ours * bandwidth / params
    torch_ms = f"{t['torch'] * 1e3:>8.2f}" if "torch" in t else f"{'n/a':>8}"
    torch_ratio = f"{ours / t['torch']:>7.2f}x" if "torch" in t else f"{'n/a':>8}"
    print(
        f"{case:<5}{mode:<6}{'on' if ams else 'off':<4}"
        f"{t['keras Adam'] * 1e3:>8.2f}{t['MultiOptimizer'] * 1e3:>8.2f}"
        f"{t['AdamMultilr tf'] * 1e3:>8.2f}{ours * 1e3:>8.2f}{torch_ms}"
        f"{ours / t['keras Adam']:>7.2f}x{ours / t['AdamMultilr tf']:>8.2f}x{torch_ratio}"
        f"{t['keras Adam #2'] / t['keras Adam']:>6.2f}x"
        f"{bandwidth / 1e9:>6.1f}{achieved:>8.1f}{achieved / floor_bytes:>7.2f}x",
        flush=True,
    )


if __name__ == "__main__":
    main()
