"""Wall-time cost of Sacred tracking: the quickstart run tracked vs untracked, in one process.

    python benchmarks/tracking_overhead.py                      # quickstart, 3 pairs
    python benchmarks/tracking_overhead.py --steps 100 --pairs 2

Untracked: ``gin_bindings.run_training`` with no sink (no Sacred at all). Tracked: the same
training as a Sacred run (``make_experiment``) recording into a FileStorage folder and a SQLite
database (config, info, artifacts and every metric point). Runs alternate A B B A ... in one
process, each in a fresh workdir (otherwise training would resume); the ratio of the medians is
printed. Target: tracked / untracked <= 1.02.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gin", default=str(ROOT / "gin_configs" / "quickstart.gin"))
    parser.add_argument("--steps", type=int, default=0, help="override train.num_steps")
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from capreolus_opt import gin_bindings
    from capreolus_opt.tracking.experiment import make_experiment
    from capreolus_opt.tracking.urls import close_observers, observers_from_urls

    bindings = ["train.progress = False"]
    if args.steps:
        bindings.append(f"train.num_steps = {args.steps}")
    tmp = tempfile.mkdtemp(prefix="tracking-bench-")

    def untracked(i: int) -> float:
        gin_bindings.parse_config([args.gin], bindings)
        start = time.perf_counter()
        gin_bindings.run_training(workdir=f"{tmp}/plain-{i}")
        return time.perf_counter() - start

    def tracked(i: int) -> float:
        observers = observers_from_urls([f"file://{tmp}/runs", f"sqlite:///{tmp}/runs.db"])
        ex = make_experiment()
        ex.observers.extend(observers)
        start = time.perf_counter()
        ex.run(
            config_updates={"gin_files": [args.gin], "gin_bindings": bindings,
                            "workdir": f"{tmp}/tracked-{i}"},
            options={"--capture": "sys", "--loglevel": "WARNING"},
        )  # fmt: skip
        elapsed = time.perf_counter() - start
        close_observers(observers)
        return elapsed

    untracked(-1)  # warm-up: first TF use in the process (kernels, thread pools)
    times: dict[str, list[float]] = {"untracked": [], "tracked": []}
    for i in range(args.pairs):
        order = [("untracked", untracked), ("tracked", tracked)]
        for name, fn in order if i % 2 == 0 else reversed(order):
            times[name].append(fn(i))
            print(f"pair {i}: {name:9s} {times[name][-1]:.2f} s", flush=True)
    plain, rec = statistics.median(times["untracked"]), statistics.median(times["tracked"])
    ratios = [t / u for t, u in zip(times["tracked"], times["untracked"], strict=True)]
    print(f"median untracked {plain:.2f} s, tracked {rec:.2f} s")
    print(f"ratio tracked/untracked: {rec / plain:.4f} (per pair: "
          + ", ".join(f"{r:.4f}" for r in ratios) + "; target <= 1.02)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
