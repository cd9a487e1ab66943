"""``capreolus-opt train``: run a gin-configured training as a Sacred-tracked run.

    capreolus-opt train CONFIG.gin [CONFIG.gin ...] [--gin_param BINDING ...] [--workdir DIR]
                        [--observer URL ...] [--resume RUN] [--seed N]

Without ``--observer`` the run is recorded where the environment variable
``CAPREOLUS_OPT_OBSERVERS`` says (a JSON list of URLs: how ``sweep`` hands URLs with passwords to
its points, since a command line is visible to every user in ``ps``), else in a FileStorage folder
at ``./runs``. Gin files are recorded as absolute paths, so ``--resume`` works from any directory.
Exit codes (:mod:`capreolus_opt.records.exit_codes`): 0 COMPLETED, 1 FAILED, 2 bad input, an
unreachable observer or a workdir that belongs to another run / is in use (nothing recorded), 3
COMPLETED but an observer could not be brought up to date by the end (the message names it and what
it misses; the other observers are complete) or a full disk that ended the run (FAILED, one
line), 130 INTERRUPTED (SIGINT/SIGTERM; checkpoint written,
metrics flushed). ``--outcome-json PATH`` also writes the outcome there as JSON (how a sweep point
reports to the sweep). The run itself is :func:`capreolus_opt.tracking.run.run_tracked`; this
module only builds its request and prints. Importing this module does not import TensorFlow
(``capreolus-opt --help`` stays fast)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from capreolus_opt.records import exit_codes, status
from capreolus_opt.tracking.run import DEFAULT_OBSERVER, OBSERVERS_ENV


def register(subparsers: Any) -> None:
    """Add the ``train`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "train",
        help="train from gin files and record the run with Sacred",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("gin_files", nargs="*", metavar="CONFIG.gin", help="gin files, in order")
    parser.add_argument(
        "--gin_param", action="append", default=[], metavar="BINDING",
        help="extra gin binding, parsed after the files (repeatable)",
    )  # fmt: skip
    parser.add_argument("--workdir", default="", help="checkpoints (default ./workdirs/<uuid>)")
    parser.add_argument(
        "--observer", action="append", default=None, metavar="URL",
        help="file://DIR, sqlite:///PATH, postgresql://user@host/db, mongodb://host:port/db "
        f"(repeatable; default ${OBSERVERS_ENV} as a JSON list, else {DEFAULT_OBSERVER})",
    )  # fmt: skip
    parser.add_argument("--resume", metavar="RUN", help="run UUID or run folder to continue")
    parser.add_argument("--seed", type=int, help="binds train.seed (an integer >= 0)")
    parser.add_argument(
        "--beat_every", type=_positive_seconds, default=3.0, metavar="S",
        help="deliver metrics and a heartbeat to the observers every S seconds (default 3: a "
        "killed run loses at most the last S seconds of points; a run whose heartbeat is 10 "
        "beats old is shown as DIED)",
    )  # fmt: skip
    parser.add_argument(
        "--observer_wait", type=_positive_seconds, default=30.0, metavar="S",
        help="at the end, retry an observer that cannot be written for up to S seconds "
        "(default 30) before exiting with code 3",
    )  # fmt: skip
    parser.add_argument(
        "--capture", choices=("sys", "fd", "no"), default="sys",
        help="how Sacred captures stdout/stderr (default sys)",
    )  # fmt: skip
    parser.add_argument(
        "--outcome-json", dest="outcome_json", default="", metavar="PATH",
        help="also write the run's outcome (run UUID, status, exit code, result) to PATH as JSON",
    )  # fmt: skip
    parser.set_defaults(func=handle_train)


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _say(line: str) -> None:
    print(f"capreolus-opt train: {line}", file=sys.stderr, flush=True)


def _report(line: str) -> None:
    """Notes (a workdir taken over) go to stdout beside the run's lines; warnings to stderr."""
    if line.startswith("note:"):
        print(f"capreolus-opt train: {line}", flush=True)
    else:
        _say(line)


def request_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~capreolus_opt.tracking.run.RunRequest` that ``train``'s arguments describe."""
    from capreolus_opt.tracking.run import RunRequest

    return RunRequest(
        gin_files=list(args.gin_files),
        gin_bindings=list(args.gin_param),
        observers=list(args.observer or ()),
        workdir=args.workdir,
        resume=args.resume,
        seed=args.seed,
        beat_every_s=args.beat_every,
        observer_wait_s=args.observer_wait,
        capture=args.capture,
    )


def handle_train(args: argparse.Namespace, backend: Any = None) -> int:
    """Run the training described by ``args``; return the exit code (see module docstring).

    ``backend`` replaces :mod:`capreolus_opt.config` (tests use a TensorFlow-free one).
    """
    from capreolus_opt.tracking.run import RunInputError, run_tracked

    outcome_path = getattr(args, "outcome_json", "")
    try:
        outcome = run_tracked(request_from_args(args), backend=backend, report=_report)
    except RunInputError as exc:
        _say(f"error: {exc}")
        if outcome_path:
            _write_outcome(outcome_path, None, str(exc))
        return exit_codes.INPUT
    print_outcome(outcome)
    if outcome_path:
        _write_outcome(outcome_path, outcome, "")
    return outcome.exit_code


def print_outcome(outcome: Any) -> None:
    """What ``train`` prints once its run ended (stdout; a failure's traceback on stderr)."""
    uuid_ = outcome.run_uuid
    if outcome.status == status.INTERRUPTED and outcome.stopped_reason:
        print(f"run {uuid_} INTERRUPTED ({outcome.stopped_reason}): {outcome.message}")
    elif outcome.status == status.INTERRUPTED:
        print(f"run {uuid_} INTERRUPTED; resume with --resume {uuid_}")
    elif outcome.status == status.FAILED and "\n" not in outcome.message.strip():
        _say(f"error: run {uuid_} FAILED: {outcome.message.strip()}")  # e.g. a full disk
    elif outcome.status == status.FAILED:
        print(f"run {uuid_} FAILED:\n{outcome.message}", file=sys.stderr)
    for message in outcome.incomplete:
        _say(f"error: {message}")
    if outcome.status != status.COMPLETED:
        return
    if outcome.incomplete:
        print(f"run {uuid_} COMPLETED, but incomplete in {len(outcome.incomplete)} "
              f"observer(s) (exit {outcome.exit_code}); result: {outcome.result}")  # fmt: skip
    else:
        print(f"run {uuid_} COMPLETED (id {outcome.sacred_id}); result: {outcome.result}")


def _write_outcome(path: str, outcome: Any, error: str) -> None:
    """``outcome`` as JSON at ``path``; a refused run writes its exit code and error only."""
    import json

    from capreolus_opt.tracking.run import refused_outcome

    text = outcome.to_json() if outcome is not None else json.dumps(refused_outcome(error))
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        _say(f"error: --outcome-json {path!r} could not be written: {exc.strerror or exc}")
