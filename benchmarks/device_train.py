"""Train gin_configs/quickstart.gin in several device configurations, in one process.

    python benchmarks/device_train.py --variants cpu:fp32,cpu:bf16 --out cpu.json --compare first

A variant is ``STRATEGY:PRECISION[:xla]``: STRATEGY ``cpu`` (the default strategy; run the
process with CUDA_VISIBLE_DEVICES= for a CPU reference on a GPU machine), ``gpu1`` (one GPU,
OneDeviceStrategy) or ``gpus`` (MirroredStrategy over every GPU, gin_configs/strategy/gpu.gin's
kind); PRECISION ``fp32``, ``bf16`` (mixed_bfloat16) or ``fp16`` (mixed_float16). Each variant
trains from scratch (a fresh workdir) and appends one JSON object to ``--out``: the final eval
metrics, the final train loss, the wall time and the training throughput in examples/s,
measured between the first and the last train/loss point (so tracing and XLA compilation are
left out). ``--compare REF.json`` then checks every eval metric against the reference file's
first variant (``--compare first``: against this call's first variant) within ``--tolerance``
(absolute) and exits 1 if any is outside. ``--config`` trains another gin file (e.g. smoke.gin).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capreolus_opt import config as gin_config  # noqa: E402
from capreolus_opt.training import ListSink  # noqa: E402

QUICKSTART = str(ROOT / "gin_configs" / "quickstart.gin")
KIND = {"cpu": "default", "gpu1": "one_device", "gpus": "gpu"}
POLICY = {"fp32": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class TimedSink(ListSink):
    """Remembers when each train/loss point arrived (the loop fetches the loss every call)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[int, float]] = []

    def log_metrics(self, step, metrics):
        super().log_metrics(step, metrics)
        if "train/loss" in metrics:
            self.times.append((step, time.perf_counter()))


def bindings(variant: str, steps: int | None) -> list[str]:
    parts = variant.split(":")
    if len(parts) not in (2, 3) or parts[0] not in KIND or parts[1] not in POLICY:
        raise SystemExit(f"bad variant {variant!r}: expected STRATEGY:PRECISION[:xla], see --help")
    policy = POLICY[parts[1]]
    out = [
        f'make_strategy.kind = "{KIND[parts[0]]}"',
        f"train.mixed_precision = {json.dumps(policy) if policy else 'None'}",
        f"train.jit_compile = {len(parts) == 3 and parts[2] == 'xla'}",
        "train.progress = False",
    ]
    if steps:
        out += [f"train.num_steps = {steps}", f"train.eval_every = {steps}"]
        out += [f"train.checkpoint_every = {steps}"]
    return out


def run_variant(variant: str, steps: int | None, config: str) -> dict:
    gin_config.parse_config([config], bindings(variant, steps))
    batch = gin_config.configured("train.global_batch_size")
    sink = TimedSink()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="device-train-") as workdir:
        result = gin_config.run_training(workdir=workdir, sink=sink)
    wall = time.perf_counter() - start
    (s0, t0), (s1, t1) = sink.times[0], sink.times[-1]
    return {
        "variant": variant,
        "devices": result.strategy_summary["devices"],
        "steps": result.final_step,
        "eval": result.eval_metrics,
        "final_loss": sink.series("train/loss")[-1][1],
        "wall_s": round(wall, 2),
        "examples_per_s": round((s1 - s0) * batch / (t1 - t0), 1) if s1 > s0 else None,
    }


def compare(results: list[dict], reference: dict, tolerance: float) -> bool:
    ok = True
    for r in results:
        diffs = {k: r["eval"][k] - v for k, v in reference["eval"].items()}
        worst = max(abs(d) for d in diffs.values())
        verdict = "PASS" if worst <= tolerance else "FAIL"
        ok &= verdict == "PASS"
        shown = ", ".join(f"{k} {r['eval'][k]:.4f} ({d:+.4f})" for k, d in diffs.items())
        print(f"  {verdict} {r['variant']:<16} vs {reference['variant']}: {shown}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", required=True, help="comma-separated, e.g. gpu1:fp32")
    parser.add_argument("--out", required=True, help="JSON file (a list, one entry per variant)")
    parser.add_argument("--steps", type=int, help="train.num_steps (default: quickstart's 300)")
    parser.add_argument("--config", default=QUICKSTART, help="gin file (default quickstart.gin)")
    parser.add_argument("--compare", help="reference JSON of a previous call, or 'first'")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    results = []
    for variant in args.variants.split(","):
        r = run_variant(variant, args.steps, args.config)
        print(
            f"  {r['variant']:<16} {r['steps']} steps on {r['devices']}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in r["eval"].items())
            + f", loss {r['final_loss']:.4f}, {r['examples_per_s']} examples/s, {r['wall_s']} s",
            flush=True,
        )
        results.append(r)
        Path(args.out).write_text(json.dumps(results, indent=1))
    if args.compare == "first":
        sys.exit(0 if compare(results[1:], results[0], args.tolerance) else 1)
    if args.compare:
        reference = json.loads(Path(args.compare).read_text())[0]
        sys.exit(0 if compare(results, reference, args.tolerance) else 1)


if __name__ == "__main__":
    main()
