"""``capreolus-opt train``: run a gin-configured training as a Sacred-tracked run.

    capreolus-opt train CONFIG.gin [CONFIG.gin ...] [--gin_param BINDING ...] [--workdir DIR]
                        [--observer URL ...] [--resume RUN] [--seed N]

Without ``--observer`` the run is recorded where the environment variable
``CAPREOLUS_OPT_OBSERVERS`` says (a JSON list of URLs: how ``sweep`` hands URLs with passwords to
its points, since a command line is visible to every user in ``ps``), else in a FileStorage
folder at ``./runs``. Gin files are recorded as absolute paths, so ``--resume`` works from any
directory. Exit codes: 0 COMPLETED, 1 FAILED, 2 bad input, an unreachable observer or a workdir
that belongs to another run / is in use (nothing recorded), 3 COMPLETED but an observer could not
be brought up to date by the end (the message names it and what it misses; the other observers
are complete), 130 INTERRUPTED (SIGINT/SIGTERM; checkpoint written, metrics flushed). Importing
this module does
not import TensorFlow (``capreolus-opt --help`` stays fast).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
import uuid
from typing import Any

DEFAULT_OBSERVER = "file://runs"
#: Observer URLs as a JSON list, read when no ``--observer`` is given (keeps passwords off argv).
OBSERVERS_ENV = "CAPREOLUS_OPT_OBSERVERS"
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 3, 130


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
    parser.add_argument("--seed", type=int, help="binds train.seed")
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
    parser.set_defaults(func=handle_train)


def train_arguments(**values: Any) -> argparse.Namespace:
    """The ``train`` arguments a launcher passes to :func:`handle_train` in-process: every
    option's default from the real parser, then ``values`` (e.g. ``gin_files=``, ``run_info=``),
    so a launcher never misses an option added later.

    Raises:
        TypeError: a name in ``values`` that ``train`` has no option for (``run_info`` aside).
    """
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train"])
    unknown = set(values) - set(vars(args)) - {"run_info"}
    if unknown:
        raise TypeError(f"train has no option {sorted(unknown)}; expected {sorted(vars(args))}")
    for name, value in values.items():
        setattr(args, name, value)
    return args


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _error(message: str) -> int:
    from capreolus_opt.storage import mask_urls

    print(f"capreolus-opt train: error: {mask_urls(message)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def observer_urls(given: list[str] | None) -> list[str]:
    """``--observer`` values, else the JSON list in ``$CAPREOLUS_OPT_OBSERVERS``, else the default.

    Raises:
        ValueError: the environment variable is not a JSON list of strings.
    """
    if given:
        return list(given)
    text = os.environ.get(OBSERVERS_ENV, "").strip()
    if not text:
        return [DEFAULT_OBSERVER]
    try:
        urls = json.loads(text)
    except ValueError:
        urls = None
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ValueError(
            f"${OBSERVERS_ENV} must be a non-empty JSON list of observer URLs, "
            'e.g. ["file://runs", "sqlite:///runs.db"].'
        )
    return urls


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def handle_train(args: argparse.Namespace, backend: Any = None) -> int:
    """Run the training described by ``args``; return the exit code (see module docstring).

    ``backend`` replaces :mod:`capreolus_opt.gin_bindings` (tests use a TensorFlow-free one).
    """
    from capreolus_opt.tracking.redact import install_log_redaction
    from capreolus_opt.tracking.urls import close_observers, observers_from_urls

    install_log_redaction()
    try:
        urls = observer_urls(args.observer)
        observers = observers_from_urls(urls)
    except ValueError as exc:
        return _error(str(exc))
    try:
        return _train(args, urls, observers, backend or _gin_bindings())
    finally:
        close_observers(observers)


def _train(args: argparse.Namespace, urls: list[str], observers: list, backend: Any) -> int:
    from capreolus_opt.optional import MissingExtraError
    from capreolus_opt.tracking.urls import ObserverUnreachableError, check_reachable

    gin_files, gin_bindings, workdir = list(args.gin_files), list(args.gin_param), args.workdir
    # ``run_info`` (not a command-line option): launchers choose the UUID and add their links.
    info: dict[str, Any] = {"run_uuid": uuid.uuid4().hex, **getattr(args, "run_info", {})}
    if args.resume:
        if gin_files:
            return _error("--resume takes the gin files of the run it continues; give no CONFIG.")
        try:
            prior = _find_prior(args.resume, urls)
        except ValueError as exc:
            return _error(f"--resume {args.resume!r}: {exc}")
        gin_files, gin_bindings = prior.gin_files, prior.gin_bindings + gin_bindings
        workdir = workdir or prior.workdir
        info["resumed_from"] = prior.run_uuid
    elif not gin_files:
        return _error("no CONFIG.gin given (expected at least one gin file, or --resume RUN).")
    # Absolute paths, so that the record can be rerun (and resumed) from any directory.
    gin_files = [os.path.abspath(path) for path in gin_files]
    if args.seed is not None:
        gin_bindings.append(f"train.seed = {args.seed}")
    try:
        # Parse once here so that a bad file or binding is an input error, not a FAILED run.
        backend.parse_config(gin_files, gin_bindings)
        getattr(backend, "validate_inputs", lambda: None)()  # bad data: exit 2, nothing recorded
        check_reachable(observers)
    except (ValueError, TypeError, ObserverUnreachableError, MissingExtraError) as exc:
        return _error(str(exc))
    # --- workdir ownership (capreolus_opt/tracking/workdir.py) ---------------------------------
    try:
        held = _claim_workdir(workdir, info)
    except ValueError as exc:
        return _error(str(exc))
    try:
        return _run_experiment(args, observers, backend, info, gin_files, gin_bindings, workdir)
    finally:
        if held is not None:
            from capreolus_opt.tracking.workdir import finish

            finish(held)
    # --------------------------------------------------------------------------------------------


def _claim_workdir(workdir: str, info: dict[str, Any]) -> Any:
    """Claim the workdir the run will train in (the experiment's default when none is given)."""
    import os

    from capreolus_opt.tracking.workdir import claim, is_chief_process

    if not is_chief_process():
        return None
    path = workdir or os.path.join("workdirs", info["run_uuid"])
    held = claim(path, run_uuid=info["run_uuid"], resumes=info.get("resumed_from"))
    if held.took_over:
        print(f"capreolus-opt train: note: workdir {held.path}: {held.took_over}; continuing it.")
    return held


def _run_experiment(
    args: argparse.Namespace,
    observers: list,
    backend: Any,
    info: dict[str, Any],
    gin_files: list[str],
    gin_bindings: list[str],
    workdir: str,
) -> int:
    from capreolus_opt.storage import mask_urls
    from capreolus_opt.tracking.experiment import make_experiment
    from capreolus_opt.tracking.observers import incomplete_observers

    for observer in observers:
        if hasattr(observer, "final_wait_s"):
            observer.final_wait_s = args.observer_wait
    ex = make_experiment(backend=backend, flush_every_s=args.beat_every)
    ex.observers.extend(observers)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    code = None
    try:
        run = ex.run(
            config_updates={
                "gin_files": gin_files,
                "gin_bindings": gin_bindings,
                "workdir": workdir,
            },
            info=info,
            options={"--capture": args.capture},
        )
    except KeyboardInterrupt as exc:
        reason = getattr(exc, "stopped_reason", "")  # e.g. "pruned" by a search (tune)
        if reason:
            print(f"run {info['run_uuid']} INTERRUPTED ({reason}): {exc}")
            return EXIT_INTERRUPTED
        print(f"run {info['run_uuid']} INTERRUPTED; resume with --resume {info['run_uuid']}")
        code = EXIT_INTERRUPTED
    except Exception:
        text = mask_urls(traceback.format_exc())
        print(f"run {info['run_uuid']} FAILED:\n{text}", file=sys.stderr)
        code = EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    missing = incomplete_observers(ex.current_run) if ex.current_run is not None else []
    for message in missing:
        print(f"capreolus-opt train: error: {mask_urls(message)}", file=sys.stderr)
    if code is not None:
        return code
    if missing:
        print(f"run {info['run_uuid']} COMPLETED, but incomplete in {len(missing)} "
              f"observer(s) (exit {EXIT_INCOMPLETE}); result: {run.result}")  # fmt: skip
        return EXIT_INCOMPLETE
    print(f"run {info['run_uuid']} COMPLETED (id {run._id}); result: {run.result}")
    return 0


def _find_prior(ref: str, urls: list[str]) -> Any:
    """The recorded run ``ref`` names (run folder or UUID in ``urls``), checked resumable."""
    from capreolus_opt.runs.load import find_recorded_run

    prior = find_recorded_run(ref, urls)
    if not prior.workdir:
        raise ValueError(
            f"run {prior.run_uuid} has no recorded workdir (it stopped before training started), "
            "so it cannot be resumed."
        )
    return prior


def _gin_bindings() -> Any:
    import importlib

    return importlib.import_module("capreolus_opt.gin_bindings")
