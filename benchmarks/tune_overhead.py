"""Per-trial overhead of ``capreolus-opt tune`` against a plain ``capreolus-opt train`` of the
same point: process start, Optuna import and study access, the trial's reporting sink, tracking.

Both commands run as a user runs them (a fresh process each), interleaved, ``--repeats`` times;
the tune command is a one-trial grid search over the config's own learning rate, so both train
the same point. Prints the median wall time of each and the overhead as a fraction of the plain
run (target: <= 5% of a quickstart run). On a loaded machine two runs of the same training differ by
more than the overhead, so the script also times the parts tune adds, precisely: importing Optuna
(``python -X importtime``, after what train imports anyway) and study access per trial (open a
journal study, ask, suggest, report every evaluation, tell; median over 20 trials).

    python benchmarks/tune_overhead.py                      # gin_configs/quickstart.gin
    python benchmarks/tune_overhead.py --config gin_configs/smoke.gin --repeats 3
    python benchmarks/tune_overhead.py --parts-only --train-seconds 20   # parts vs a 20 s run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(argv: list[str], cwd: str) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}")
    return elapsed


def _import_seconds(repeats: int = 3) -> float:
    """Median time to import what tune adds (Optuna, our search modules) in a process that has
    already imported what a plain train imports (TensorFlow, gin, Sacred, SQLAlchemy), from
    ``python -X importtime`` (precise, unlike the difference of two process start-ups)."""
    trained = "import capreolus_opt.config, capreolus_opt.tracking.experiment"
    code = f"{trained}; import optuna, capreolus_opt.search.worker, capreolus_opt.search.trial"
    added = ("optuna", "capreolus_opt.search", "capreolus_opt.launchers")
    times = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True,
                              capture_output=True, text=True, env={**os.environ,
                              "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
        micros = 0
        for line in proc.stderr.splitlines():
            fields = line.split("|")
            if len(fields) == 3 and fields[2].startswith(" ") and not fields[2].startswith("  "):
                if fields[2].strip().startswith(added):  # top-level import (no indent)
                    micros += int(fields[1])
        times.append(micros / 1e6)
    return statistics.median(times)


def _study_access_seconds(tmp: str, n_trials: int = 20, evals: int = 3) -> float:
    """Median per-trial time of what a worker does around one training."""
    sys.path.insert(0, str(ROOT))
    import optuna

    from capreolus_opt.search.storage import open_storage
    from capreolus_opt.search.worker import make_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    times = []
    for i in range(n_trials):
        start = time.perf_counter()
        study = optuna.create_study(
            study_name="parts", storage=open_storage(f"journal://{tmp}/parts.log"),
            direction="maximize", pruner=make_pruner(argparse.Namespace(
                pruner="median", pruner_startup_trials=5, pruner_warmup_steps=0)),
            load_if_exists=True,
        )  # fmt: skip
        trial = study.ask()
        trial.suggest_float("LR", 1e-4, 1e-2, log=True)
        trial.set_user_attr("run_uuid", f"{i:032x}")
        for step in range(evals):
            trial.report(0.5 + i / 100, step)
            trial.should_prune()
        study.tell(trial, 0.5)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parts(train_seconds: float) -> None:
    imports = _import_seconds()
    with tempfile.TemporaryDirectory(prefix="tune-parts-") as tmp:
        access = _study_access_seconds(tmp)
    total = imports + access
    print(f"importing Optuna and the search modules: {imports:.3f} s; study access per trial "
          f"(journal storage): {access:.3f} s")  # fmt: skip
    share = total / train_seconds
    verdict = "meets" if share <= 0.05 else "misses"
    print(f"tune's own parts: {total:.3f} s = {share:.2%} of a {train_seconds:.1f} s run "
          f"({verdict} the 5% target)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "gin_configs" / "quickstart.gin"))
    parser.add_argument("--lr", default="2e-3", help="the config's AdamMultilr.learning_rate")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts-only", action="store_true", help="skip the end-to-end runs")
    parser.add_argument("--train-seconds", type=float, default=0.0,
                        help="with --parts-only: the plain run to compare with")  # fmt: skip
    args = parser.parse_args()
    if args.parts_only:
        parts(args.train_seconds or 20.0)
        return
    cli = [sys.executable, "-m", "capreolus_opt.cli"]
    config = os.path.abspath(args.config)
    train_times, tune_times = [], []
    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        for i in range(args.repeats):
            train = [*cli, "train", config, "--gin_param", f"AdamMultilr.learning_rate = {args.lr}",
                     "--observer", f"file://{tmp}/train_runs"]  # fmt: skip
            tune = [*cli, "tune", config, "--space", f"AdamMultilr.learning_rate=[{args.lr}]",
                    "--sampler", "grid", "--n-trials", "1", "--study", f"bench{i}",
                    "--storage", f"journal://{tmp}/study.log",
                    "--observer", f"file://{tmp}/tune_runs"]  # fmt: skip
            # Alternate which goes first, so drift on a shared machine hits both alike.
            pair = [(train, train_times), (tune, tune_times)]
            for argv, times in pair if i % 2 == 0 else reversed(pair):
                times.append(_timed(argv, tmp))
                print(f"  {argv[3]:5s} run {i}: {times[-1]:.2f} s", flush=True)
    t_train, t_tune = statistics.median(train_times), statistics.median(tune_times)
    ratio = (t_tune - t_train) / t_train
    print(f"train median {t_train:.2f} s, tune (1 trial) median {t_tune:.2f} s")
    print(f"per-trial overhead of tune: {t_tune - t_train:+.2f} s = {ratio:+.1%} of a plain run "
          f"({'meets' if ratio <= 0.05 else 'misses'} the 5% target)")  # fmt: skip
    parts(t_train)


if __name__ == "__main__":
    main()
