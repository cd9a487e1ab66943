"""Wall-time cost of Sacred tracking: the quickstart run tracked vs untracked, in one process.

    python benchmarks/tracking_overhead.py                # quickstart (300 steps), 7 pairs
    python benchmarks/tracking_overhead.py --quick        # 100 steps, 2 pairs (a smoke check)
    python benchmarks/tracking_overhead.py --steps 200 --pairs 7

Untracked: ``gin_config.run_training`` with no sink (no Sacred at all). Tracked: what
``capreolus-opt train`` does, recording into a FileStorage folder and a SQLite database (config,
info, artifacts, every metric point): create the experiment and observers, check them, run, close.
Each pair runs both in fresh workdirs (otherwise training would resume), alternating which goes
first. A short untracked and a short tracked run warm the process up first (TF's first use,
importing SQLAlchemy, creating the database tables): what is measured is the steady cost of
tracking one more run, as in a sweep or a notebook. A fresh ``capreolus-opt train`` process pays
those one-off costs, and importing Sacred, once more (printed first).

Two measures of the cost, both printed:

- the ratio tracked / untracked wall time, per pair and its median. On a shared 2-core machine
  training time itself drifts by several percent between runs (10-50% under other people's
  load), so this ratio is noisy; the ratio of process CPU times is printed beside it (less
  sensitive to waiting for the CPU, still disturbed by cache contention).
- the tracking time measured inside the tracked run: its wall time minus the time spent in
  training proper (``run_training`` minus the time spent in the sink's ``log_metrics``/``flush``
  and in the ``on_start`` callback). That is every second the tracked run spends outside
  training -- experiment and observer setup, Sacred's start, every metric delivery, artifacts,
  the final heartbeat and completion -- as a fraction of the tracked run's wall time. It does
  not depend on how fast the training happened to be, so it is the stable number.

Tracking delivers points and a heartbeat every 3 s (``train --beat_every``: the bound on what
SIGKILL loses), each FileStorage file through a temporary file, fsync and rename.

Target: tracking costs <= 2% of wall time. A breakdown (median over the tracked runs) shows
where the tracking time goes, and per observer method how long its calls took.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.02
OBSERVER_EVENTS = (
    "started_event",
    "heartbeat_event",
    "log_metrics",
    "artifact_event",
    "resource_event",
    "completed_event",
    "interrupted_event",
    "failed_event",
)


class Clock:
    """Sums ``perf_counter`` durations by label."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def timed(self, label: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[label] += time.perf_counter() - start
                self.count[label] += 1

        return wrapper


class TimedSink:
    """Forwards to the Sacred sink, timing every call made from the training loop."""

    def __init__(self, sink: Any, clock: Clock) -> None:
        self.log_metrics = clock.timed("sink", sink.log_metrics)
        self.flush = clock.timed("sink", sink.flush)


class TimedBackend:
    """The config package with ``run_training`` timed and its sink and ``on_start`` wrapped."""

    def __init__(self, backend: Any, clock: Clock) -> None:
        self._backend, self._clock = backend, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def run_training(self, *, workdir: str, sink: Any = None, on_start: Any = None) -> Any:
        clock = self._clock
        clock.total["entered_training"] = time.perf_counter()
        if on_start is not None:
            on_start = clock.timed("on_start", on_start)
        sink = TimedSink(sink, clock) if sink is not None else None
        try:
            return clock.timed("run_training", self._backend.run_training)(
                workdir=workdir, sink=sink, on_start=on_start
            )
        finally:
            clock.total["left_training"] = time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gin", default=str(ROOT / "gin_configs" / "quickstart.gin"))
    parser.add_argument("--steps", type=int, default=0, help="override train.num_steps")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="100 steps, 2 pairs")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.pairs = args.steps or 100, 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from capreolus_opt import config as gin_config  # TensorFlow: imported by an untracked run too

    import_start = time.perf_counter()
    from capreolus_opt.tracking.experiment import make_experiment  # Sacred (and pandas)
    from capreolus_opt.tracking.urls import check_reachable, close_observers, observers_from_urls

    import_s = time.perf_counter() - import_start

    bindings = ["train.progress = False"]
    if args.steps:
        bindings.append(f"train.num_steps = {args.steps}")
    tmp = tempfile.mkdtemp(prefix="tracking-bench-")

    def untracked(i: int, bindings: list[str] = bindings) -> tuple[float, float, None]:
        gin_config.parse_config([args.gin], bindings)
        start, cpu = time.perf_counter(), time.process_time()
        gin_config.run_training(workdir=f"{tmp}/plain-{i}")
        return time.perf_counter() - start, time.process_time() - cpu, None

    def tracked(i: int, bindings: list[str] = bindings) -> tuple[float, float, Clock]:
        clock = Clock()
        start, cpu = time.perf_counter(), time.process_time()
        ex = make_experiment(backend=TimedBackend(gin_config, clock))
        observers = observers_from_urls([f"file://{tmp}/runs", f"sqlite:///{tmp}/runs.db"])
        for observer in observers:
            kind = type(observer).__name__
            for event in OBSERVER_EVENTS:
                if hasattr(observer, event):
                    method = getattr(observer, event)
                    setattr(observer, event, clock.timed(f"{kind}.{event}", method))
        check_reachable(observers)
        ex.observers.extend(observers)
        clock.total["setup"] = time.perf_counter() - start
        run_start = time.perf_counter()
        ex.run(
            config_updates={"gin_files": [args.gin], "gin_bindings": bindings,
                            "workdir": f"{tmp}/tracked-{i}"},
            options={"--capture": "sys", "--loglevel": "WARNING"},
        )  # fmt: skip
        run_end = time.perf_counter()
        close_observers(observers)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        t = clock.total
        t["run start"] = t.pop("entered_training") - run_start
        t["run end"] = run_end - t.pop("left_training")
        t["close"] = elapsed - (run_end - start)
        training = t["run_training"] - t["sink"] - t["on_start"]
        t["tracking"] = elapsed - training
        return elapsed, cpu, clock

    warm = ["train.progress = False", "train.num_steps = 20"]
    untracked(-1, warm)
    cold = tracked(-1, warm)[2].total
    print(f"once per process: importing Sacred {import_s:.3f} s; first tracked run (20 steps): "
          f"tracking {cold['tracking']:.3f} s, of which setup {cold['setup']:.3f} s "
          "(importing SQLAlchemy, creating the tables)", flush=True)  # fmt: skip
    rows = []
    for i in range(args.pairs):
        order = [("untracked", untracked), ("tracked", tracked)]
        if i % 2:
            order.reverse()
        result = {name: fn(i) for name, fn in order}
        (plain, plain_cpu, _), (rec, rec_cpu, clock) = result["untracked"], result["tracked"]
        rows.append((i, order[0][0], plain, rec, rec_cpu / plain_cpu, clock))
        print(f"pair {i} ({order[0][0]} first): untracked {plain:.2f} s, tracked {rec:.2f} s, "
              f"tracking {clock.total['tracking']:.3f} s", flush=True)  # fmt: skip

    from capreolus_opt.tracking.sink import DEFAULT_BEAT_S

    print(f"\nquickstart {args.gin}, {args.steps or 'default'} steps; observers: file + sqlite; "
          f"a delivery + heartbeat every {DEFAULT_BEAT_S} s (the durability bound), FileStorage "
          "files written atomically with fsync\n")  # fmt: skip
    print("pair  first      untracked_s  tracked_s  ratio   cpu_ratio  tracking_s  tracking/wall")
    for i, first, plain, rec, cpu_ratio, clock in rows:
        tr = clock.total["tracking"]
        print(f"{i:4d}  {first:9s}  {plain:11.2f}  {rec:9.2f}  {rec / plain:6.4f}  {cpu_ratio:9.4f}"
              f"  {tr:10.3f}  {tr / rec:13.4f}")  # fmt: skip
    med = statistics.median
    ratios = [rec / plain for _, _, plain, rec, _, _ in rows]
    cpu_ratios = [r[4] for r in rows]
    fractions = [c.total["tracking"] / rec for _, _, _, rec, _, c in rows]
    print(f"median {'':9s}  {med(r[2] for r in rows):11.2f}  {med(r[3] for r in rows):9.2f}  "
          f"{med(ratios):6.4f}  {med(cpu_ratios):9.4f}  "
          f"{med(c.total['tracking'] for *_, c in rows):10.3f}"
          f"  {med(fractions):13.4f}")  # fmt: skip
    print(f"\nmedian per-pair ratio tracked/untracked: wall {med(ratios):.4f}, CPU time "
          f"{med(cpu_ratios):.4f} (target <= {1 + TARGET})")  # fmt: skip
    print(f"median measured tracking time / tracked wall time: {med(fractions):.4f} "
          f"(target <= {TARGET})")  # fmt: skip

    # Beats also run on the sink's own thread, concurrently with training (mostly waiting on
    # fsync, GIL released): the time of every observer call, on any thread, bounds that cost.
    observer_fractions = [
        sum(v for k, v in c.total.items() if "." in k) / rec for _, _, _, rec, _, c in rows
    ]
    print(f"median observer-call time (all threads, the sink's beat thread included) / tracked "
          f"wall time: {med(observer_fractions):.4f} (bounds that thread's share)")  # fmt: skip

    print("\nwhere the tracking time goes (median over tracked runs, seconds):")
    for label in ("setup", "run start", "on_start", "sink", "run end", "close", "tracking"):
        print(f"  {label:10s} {med(c.total[label] for *_, c in rows):7.3f}")
    print("observer calls (median total seconds, calls):")
    labels = sorted({k for *_, c in rows for k in c.count if "." in k})
    for label in labels:
        total = med(c.total[label] for *_, c in rows)
        print(f"  {label:40s} {total:7.3f}  {rows[-1][-1].count[label]:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
