"""Benchmark: ``load_runs`` on 1,000 FileStorage runs x 1,000 metric points vs plain ``json.load``.

Quality bar: reading and normalizing the runs costs less than 3x ``json.load`` of the
same files (run.json, config.json, info.json, metrics.json of every run folder), and
``compare --group-by`` (7 groups of seeds, mean/std/CI per group) costs at most 2x plain
``compare`` on the same runs, both through the real command handler. The folders are
written in Sacred's FileStorageObserver format (``json.dump(..., sort_keys=True, indent=2)``, ISO
timestamps), with 1,000 points per run over 4 metrics. Timings alternate baseline / candidate and
report medians (docs/STACK_FACTS.md §6: absolute times drift on shared machines, ratios do not).

Run: ``.venv/bin/python benchmarks/load_runs.py [--runs 1000] [--points 1000] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import statistics
import tempfile
import time
import uuid

from capreolus_opt.records.load import load_runs

_SHARES = {"train/loss": 0.5, "group/encoder/lr": 0.2, "group/head/lr": 0.2, "eval/mrr@10": 0.1}


def _dump(obj: object, path: str) -> None:
    with open(path, "w") as handle:
        json.dump(obj, handle, sort_keys=True, indent=2)


def write_runs(root: str, n_runs: int, n_points: int) -> None:
    """Write ``n_runs`` FileStorage run folders with ``n_points`` metric points each."""
    start = dt.datetime(2026, 1, 1)
    for i in range(1, n_runs + 1):
        folder = os.path.join(root, str(i))
        os.makedirs(folder)
        lr = 10 ** (-3 - (i % 7) / 3)
        begin = start + dt.timedelta(minutes=i)
        _dump(
            {"status": "COMPLETED", "start_time": begin.isoformat(),
             "stop_time": (begin + dt.timedelta(seconds=60)).isoformat(),
             "heartbeat": (begin + dt.timedelta(seconds=60)).isoformat(),
             "result": {"mrr@10": 0.5}, "command": "main", "meta": {}, "host": {},
             "experiment": {"name": "capreolus_opt"}, "artifacts": [], "resources": []},
            os.path.join(folder, "run.json"),
        )  # fmt: skip
        _dump(
            {"gin_files": ["gin_configs/smoke.gin"], "seed": i,
             "gin_bindings": [f"AdamMultilr.learning_rate = {lr!r}"],
             "hparams": [["AdamMultilr.learning_rate", lr], ["train.steps", 500],
                         ["train.seed", i]]},
            os.path.join(folder, "config.json"),
        )  # fmt: skip
        _dump(
            {"run_uuid": uuid.uuid4().hex, "strategy": {"kind": "default"}, "versions": {},
             "group_table": [{"variable": "encoder/kernel", "shape": [4, 4], "params": 16,
                              "group": "encoder", "pattern": "encoder/", "lr": lr}]},
            os.path.join(folder, "info.json"),
        )  # fmt: skip
        metrics = {}
        for name, share in _SHARES.items():
            count = int(n_points * share)
            steps = list(range(1, count + 1))
            metrics[name] = {
                "steps": steps,
                "values": [1.0 / (1.0 + lr * s) for s in steps],
                "timestamps": [(begin + dt.timedelta(seconds=s)).isoformat() for s in steps],
            }
        _dump(metrics, os.path.join(folder, "metrics.json"))


def plain_json(root: str) -> int:
    """Baseline: json.load every JSON file of every run folder; returns the number of runs."""
    count = 0
    for entry in os.scandir(root):
        for name in ("run.json", "config.json", "info.json", "metrics.json"):
            with open(os.path.join(entry.path, name), "rb") as handle:
                json.load(handle)
        count += 1
    return count


def run_compare(root: str, *extra: str) -> str:
    """``capreolus-opt compare ROOT --format csv EXTRA...`` in this process; its stdout."""
    from capreolus_opt.cli import main as cli_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["compare", root, "--format", "csv", *extra])
    if code != 0:
        raise SystemExit(f"compare {' '.join(extra)} exited {code}")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_load_runs_") as root:
        write_runs(root, args.runs, args.points)
        base, cand = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            n_base = plain_json(root)
            t1 = time.perf_counter()
            runs = load_runs(root)
            t2 = time.perf_counter()
            base.append(t1 - t0)
            cand.append(t2 - t1)
        if n_base != args.runs or len(runs) != args.runs or runs.problems:
            raise SystemExit(f"read {len(runs)} runs, {len(runs.problems)} problems")
        points = sum(len(s) for s in runs[0].metrics.values())
        b, c = statistics.median(base), statistics.median(cand)
        print(f"{args.runs} runs x {points} points, median of {args.repeats}")
        print(f"json.load baseline: {b:.3f} s   load_runs: {c:.3f} s   ratio: {c / b:.2f}x "
              f"(target < 3x)")  # fmt: skip
        plain, grouped = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            rows = run_compare(root)
            t1 = time.perf_counter()
            groups = run_compare(root, "--group-by")
            t2 = time.perf_counter()
            plain.append(t1 - t0)
            grouped.append(t2 - t1)
        if rows.count("\n") != args.runs + 1 or groups.count("\n") != 7 + 1:
            raise SystemExit("compare printed an unexpected number of rows")
        p, g = statistics.median(plain), statistics.median(grouped)
        print(f"compare: {p:.3f} s   compare --group-by (7 groups): {g:.3f} s   "
              f"ratio: {g / p:.2f}x (target <= 2x)")  # fmt: skip


if __name__ == "__main__":
    main()
