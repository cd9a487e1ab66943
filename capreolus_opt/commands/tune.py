"""``capreolus-opt tune``: an Optuna search over gin bindings; each trial is one tracked run.

    capreolus-opt tune CONFIG.gin --space 'AdamMultilr.learning_rate=float(1e-4, 1e-2, log)'
        --space 'RerankingTask.loss=["softmax", "pairwise"]' --metric eval/ndcg@10
        --study NAME --storage URL --n-trials N [--sampler tpe|random|grid] [--pruner median]
        [--workers N] [--launcher local|slurm ...] [--observer URL ...]
    capreolus-opt tune --status --study NAME --storage URL [--observer URL ...]

``--storage`` (or ``$CAPREOLUS_TUNE_STORAGE``, which keeps a password out of ``ps``) is PostgreSQL
(workers on several machines), ``journal:///path/study.log`` (one machine) or ``sqlite:///PATH``
(one worker). Running the command again with the same study continues it: finished trials stay,
interrupted ones resume from their checkpoint, and workers stop once the study holds N trials.
Exit codes: 0 done, 1 a trial's run FAILED, 2 bad input (nothing started), 130 interrupted.
Importing this module does not import TensorFlow or Optuna.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from capreolus_opt.records import exit_codes

STORAGE_ENV = "CAPREOLUS_TUNE_STORAGE"


def register(subparsers: Any) -> None:
    """Add the ``tune`` sub-command to ``subparsers``."""
    from capreolus_opt.launchers.slurm import add_launcher_arguments

    p = subparsers.add_parser(
        "tune", help="Optuna search over gin bindings, one tracked run per trial",
        description=__doc__.split("\n\n")[0],
    )  # fmt: skip
    p.add_argument("config", nargs="*", metavar="CONFIG.gin", help="gin files, in order")
    p.add_argument(
        "--space", action="append", default=[], metavar="'NAME=float(LOW, HIGH[, log])'",
        help="a binding or gin macro and its range: float(LOW, HIGH[, log]), int(LOW, HIGH[, log]) "
        "or [v1, v2, ...] (gin values, as sweep --grid); repeatable",
    )  # fmt: skip
    p.add_argument("--metric", default="eval/ndcg@10", help="eval/ metric to optimise")
    p.add_argument("--direction", choices=("maximize", "minimize"), default=None,
                   help="default: minimize for losses/errors, else maximize")  # fmt: skip
    p.add_argument("--study", required=True, help="study name (shared by all its workers)")
    p.add_argument("--storage", default=None, metavar="URL", help=f"or ${STORAGE_ENV}")
    p.add_argument("--n-trials", type=int, default=10, metavar="N", help="trials of the study")
    p.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (offset per worker)")
    p.add_argument("--pruner", choices=("none", "median"), default="none")
    p.add_argument("--pruner-startup-trials", type=int, default=5, metavar="N",
                   help="median pruner: finished trials before any pruning")  # fmt: skip
    p.add_argument("--pruner-warmup-steps", type=int, default=0, metavar="STEPS",
                   help="median pruner: no pruning before this training step")  # fmt: skip
    p.add_argument("--gin_param", action="append", default=[], help="binding for every trial")
    p.add_argument(
        "--observer", action="append", default=[], metavar="URL",
        help="where each trial's run is recorded (as train; default file://runs)",
    )  # fmt: skip
    p.add_argument("--workdir_root", default="", metavar="DIR",
                   help="checkpoints in DIR/<run uuid> (default workdirs/<run uuid>)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, metavar="N", help="parallel workers")
    p.add_argument("--status", action="store_true", help="show the study's trials and runs")
    p.add_argument("--format", default="table", choices=("table", "csv", "json", "markdown"))
    add_launcher_arguments(p)
    p.set_defaults(func=handle_tune)


def _fail(message: str) -> int:
    from capreolus_opt.tracking.redact import REDACTOR

    print(f"capreolus-opt tune: error: {REDACTOR.redact(message)}", file=sys.stderr)
    return exit_codes.INPUT


def _direction(args: argparse.Namespace) -> str:
    from capreolus_opt.records.record import best_direction

    if args.direction:
        return args.direction
    return "minimize" if best_direction(args.metric) == "min" else "maximize"


def _spec(args: argparse.Namespace, storage: str) -> Any:
    from capreolus_opt.search.space import grid_search_space, grid_size, parse_spaces
    from capreolus_opt.search.storage import check_storage_url
    from capreolus_opt.search.worker import SearchSpec
    from capreolus_opt.tracking.urls import close_observers, observers_from_urls

    if not args.config:
        raise ValueError("no CONFIG.gin given")
    for path in args.config:
        if not os.path.isfile(path):
            raise ValueError(f"gin file {path!r} does not exist")
    if not args.metric.startswith("eval/") or args.metric == "eval/":
        raise ValueError(f"--metric {args.metric!r}: expected an eval/ metric, e.g. eval/ndcg@10")
    if args.n_trials < 1 or args.workers < 1:
        raise ValueError(f"--n-trials and --workers must be >= 1, got {args.n_trials}, "
                         f"{args.workers}")  # fmt: skip
    dims = parse_spaces(args.space)
    n_trials = args.n_trials
    if args.sampler == "grid":
        grid_search_space(dims)
        n_trials = min(n_trials, grid_size(dims))  # beyond it Optuna re-evaluates points
    parallel = args.workers > 1 or args.launcher == "slurm"
    check_storage_url(storage, parallel=parallel)
    close_observers(observers_from_urls(args.observer))  # refuse a bad URL before any worker
    return SearchSpec(
        config=[os.path.abspath(p) for p in args.config], spaces=list(args.space),
        metric=args.metric, direction=_direction(args), study=args.study, storage=storage,
        n_trials=n_trials, sampler=args.sampler, seed=args.seed, pruner=args.pruner,
        pruner_startup_trials=args.pruner_startup_trials,
        pruner_warmup_steps=args.pruner_warmup_steps, gin_param=list(args.gin_param),
        observers=list(args.observer), workdir_root=os.path.abspath(args.workdir_root)
        if args.workdir_root else "", parallel=parallel,
    )  # fmt: skip


def _check_against_config(args: argparse.Namespace, spec: Any) -> None:
    """The space and the metric against the gin config, before any study is created or opened
    (a typo must not create a study named after it). The metric needs the task built, which a
    Slurm submission host may not be able to do (data on the cluster): checked locally only."""
    import importlib

    from capreolus_opt.search.check import check_search
    from capreolus_opt.search.space import parse_spaces
    from capreolus_opt.tracking.quiet_import import import_tensorflow_quietly

    import_tensorflow_quietly()
    backend = importlib.import_module("capreolus_opt.config")
    check_search(spec, parse_spaces(spec.spaces), backend, metric=args.launcher != "slurm")


def _show_status(args: argparse.Namespace, storage: str) -> int:
    from capreolus_opt.optional import require
    from capreolus_opt.search.status import status_text
    from capreolus_opt.search.storage import open_storage, storage_file

    optuna = require("optuna", "tune")
    missing = storage_file(storage)
    if missing is not None and not os.path.isfile(missing):
        return _fail(
            f"--storage {storage}: no such file {missing} (expected the storage of an existing "
            "study; `tune --status` never creates one)"
        )
    try:
        study = optuna.load_study(study_name=args.study, storage=open_storage(storage))
    except KeyError:
        return _fail(f"no study {args.study!r} in the storage")
    sys.stdout.write(status_text(study, args.observer, args.format))
    return exit_codes.OK


def handle_tune(args: argparse.Namespace) -> int:
    """Run (or continue, or show) the study; return the exit code (module docstring)."""
    from capreolus_opt.search.storage import StorageError
    from capreolus_opt.tracking.redact import install_log_redaction

    install_log_redaction()
    storage = args.storage or os.environ.get(STORAGE_ENV, "")
    if not storage:
        return _fail(f"give --storage URL (or set ${STORAGE_ENV})")
    try:
        if args.status:
            return _show_status(args, storage)
        spec = _spec(args, storage)
        _check_against_config(args, spec)
    except (StorageError, ValueError) as exc:
        return _fail(str(exc))
    from capreolus_opt.optional import require

    optuna = require("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    code = _launch(args, spec)
    if code is None:  # submitted without waiting
        return exit_codes.OK
    if code != exit_codes.INPUT:
        _show_status(args, storage)
    return code


def _launch(args: argparse.Namespace, spec: Any) -> int | None:
    if args.launcher == "slurm":
        from capreolus_opt.launchers.slurm import submit_tune

        try:
            return submit_tune(args, spec, args.workers)
        except ValueError as exc:
            return _fail(str(exc))
    if args.workers > 1:
        from capreolus_opt.launchers.local import run_workers

        return run_workers(spec, args.workers)
    from capreolus_opt.search.worker import run_worker

    return run_worker(spec)
