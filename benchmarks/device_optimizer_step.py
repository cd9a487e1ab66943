"""Optimizer step on the current default device: AdamMultilr (fused and not) vs Keras Adam.

    python benchmarks/device_optimizer_step.py [--repeats 21]

Case (a) of benchmarks/optimizer_step.py (27.2M float32 parameters in 13 variables; AdamMultilr
with 3 groups) in graph mode and under XLA. Each timed step ends by reading one element of a
variable, so the GPU's asynchronous kernels are waited for; the optimizers' steps are
interleaved and the median is reported, with ratios against Keras Adam measured in the same
run. ``fused`` is AdamMultilr's default (TF's ResourceApplyAdam kernel per variable; outside
XLA only, so under XLA both columns run the same keras.ops path).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
import tensorflow as tf
from optimizer_step import LR_BASE, LR_EMB, LR_LOW, layout, make_variables

from capreolus_opt.optimizer import AdamMultilr

tf.get_logger().setLevel("ERROR")


def optimizer(kind: str) -> keras.optimizers.Optimizer:
    if kind == "keras Adam":
        return keras.optimizers.Adam(LR_BASE)
    groups = {r"^embedding/": LR_EMB, r"^layer_[0-5]/": LR_LOW}
    return AdamMultilr(LR_BASE, pattern_lrs=groups, fused=(kind == "AdamMultilr fused"))


def timed_step(kind: str, jit: bool, grads: list[tf.Tensor]):
    variables = make_variables("a")
    opt = optimizer(kind)
    opt.build(variables)
    fn = tf.function(lambda g: opt.apply(g, variables), jit_compile=jit)

    def step() -> float:
        start = time.perf_counter()
        fn(grads)
        _ = variables[-1][0, 0].numpy()  # wait for the device
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    device = (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0]
    print(f"TF {tf.__version__} on {device.name}; median of {args.repeats} interleaved steps")
    grads = [
        tf.constant(np.random.default_rng(i).standard_normal(s, dtype=np.float32) * 1e-2)
        for i, (_, s) in enumerate(layout("a"))
    ]
    kinds = ["keras Adam", "AdamMultilr fused", "AdamMultilr unfused"]
    print(f"{'mode':<7}" + "".join(f"{k + ' ms':>24}" for k in kinds) + f"{'fused/keras':>13}"
          f"{'unfused/keras':>15}")  # fmt: skip
    for mode in ("graph", "xla"):
        steps = {k: timed_step(k, mode == "xla", grads) for k in kinds}
        for step in steps.values():
            step(), step()  # trace, compile, warm up
        times = {k: [] for k in kinds}
        for r in range(args.repeats):
            for k in kinds if r % 2 == 0 else kinds[::-1]:
                times[k].append(steps[k]())
        ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(
            f"{mode:<7}" + "".join(f"{ms[k]:>24.3f}" for k in kinds)
            + f"{ms['AdamMultilr fused'] / ms['keras Adam']:>12.2f}x"
            + f"{ms['AdamMultilr unfused'] / ms['keras Adam']:>14.2f}x",
            flush=True,
        )  # fmt: skip
    params = sum(int(np.prod(s)) for _, s in layout("a"))
    print(f"case a: {params / 1e6:.1f}M params / 13 variables, 3 groups")


if __name__ == "__main__":
    main()
