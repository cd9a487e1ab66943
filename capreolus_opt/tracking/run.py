"""One tracked run: :func:`run_tracked` takes a :class:`RunRequest` and returns a
:class:`RunOutcome`.

Every launch path calls it: ``capreolus-opt train`` (which only turns its arguments into a
request), sweep points (each a ``train`` process that writes its outcome as JSON with
``--outcome-json``), Optuna trials (in the worker's process), Slurm array tasks and
``experiments/train.py``. So each gives the same guarantees, in this order, before anything is
recorded: the observer URLs parse, ``--resume`` names a recorded, resumable run, the gin config
parses (once; the parsed result is what the Sacred experiment records), every bound value is
valid, the task's data is valid, every observer is reachable, and the workdir is free to claim.
Any of those failing raises :class:`RunInputError` (exit :data:`~exit_codes.INPUT`, nothing
recorded). After that the run is recorded whatever happens, and the outcome says how it ended.

Observer URLs: ``RunRequest.observers``, else the JSON list in ``$CAPREOLUS_OPT_OBSERVERS`` (how
URLs with passwords reach a child process: a command line is visible to every user in ``ps``),
else :data:`DEFAULT_OBSERVER`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from capreolus_opt.optional import MissingExtraError
from capreolus_opt.records import exit_codes, status
from capreolus_opt.records.schema import ConfigKey, InfoKey, hparam_pairs

DEFAULT_OBSERVER = "file://runs"
#: Observer URLs as a JSON list, read when a request names none (keeps passwords off argv).
OBSERVERS_ENV = "CAPREOLUS_OPT_OBSERVERS"
DEFAULT_BEAT_S = 3.0
DEFAULT_OBSERVER_WAIT_S = 30.0
CAPTURE_MODES = ("sys", "fd", "no")


class RunInputError(ValueError):
    """The request cannot start a run (bad value or file, unreachable observer, workdir in use,
    run not resumable); nothing was recorded. The message is one line, credentials masked."""


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """What one tracked run needs.

    Attributes:
        gin_files: gin files, in order (none with ``resume``: the run's own are used).
        gin_bindings: extra bindings, parsed after the files (with ``resume``: after the run's).
        observers: observer URLs; empty: ``$CAPREOLUS_OPT_OBSERVERS``, else ``file://runs``.
        workdir: checkpoint folder; ``""``: the resumed run's, else ``./workdirs/<run_uuid>``.
        resume: a run UUID (looked up in the observers) or a run folder to continue.
        seed: binds ``train.seed`` when given.
        beat_every_s: metrics and a heartbeat reach the observers this often.
        observer_wait_s: at the end, how long an observer that cannot be written is retried.
        capture: Sacred's output capture (``sys``, ``fd`` or ``no``).
        run_uuid: the run's UUID (a launcher presets it to link its own records); new if None.
        info: extra run info a launcher adds (``tune``, ``slurm``).
    """

    gin_files: Sequence[str] = ()
    gin_bindings: Sequence[str] = ()
    observers: Sequence[str] = ()
    workdir: str = ""
    resume: str | None = None
    seed: int | None = None
    beat_every_s: float = DEFAULT_BEAT_S
    observer_wait_s: float = DEFAULT_OBSERVER_WAIT_S
    capture: str = "sys"
    run_uuid: str | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """How a recorded run ended.

    Attributes:
        run_uuid: the run's UUID (``info.run_uuid`` in every observer).
        status: ``COMPLETED``, ``FAILED`` or ``INTERRUPTED`` (:mod:`capreolus_opt.records.status`).
        exit_code: the ``train`` exit code for it (:mod:`capreolus_opt.records.exit_codes`).
        result: the final evaluation metrics (COMPLETED), else None.
        incomplete: one message per observer whose record is incomplete (exit code 3).
        sacred_id: the highest-priority observer's own id for the run.
        stopped_reason: why an INTERRUPTED run stopped when not by a signal (``"pruned"``).
        message: the interruption's text, or the masked traceback of a FAILED run.
    """

    run_uuid: str
    status: str
    exit_code: int
    result: dict[str, float] | None = None
    incomplete: tuple[str, ...] = ()
    sacred_id: Any = None
    stopped_reason: str = ""
    message: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> RunOutcome:
        data = json.loads(text)
        data["incomplete"] = tuple(data.get("incomplete", ()))
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def refused_outcome(message: str) -> dict[str, Any]:
    """The outcome (as JSON-ready dict) of a request refused before anything was recorded: exit
    :data:`~exit_codes.INPUT` and the error, ``run_uuid`` and ``status`` null (readers tell it
    from a :meth:`RunOutcome.to_json` by the null ``run_uuid``)."""
    return {"run_uuid": None, "status": None, "exit_code": exit_codes.INPUT, "message": message}


def observer_urls(given: Sequence[str] | None) -> list[str]:
    """``given``, else the JSON list in ``$CAPREOLUS_OPT_OBSERVERS``, else the default.

    Raises:
        RunInputError: the environment variable is not a non-empty JSON list of strings.
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
        raise RunInputError(
            f"${OBSERVERS_ENV} must be a non-empty JSON list of observer URLs, "
            'e.g. ["file://runs", "sqlite:///runs.db"].'
        )
    return urls


def observer_environment(observers: Sequence[str]) -> dict[str, str]:
    """This process's environment plus ``observers`` as the JSON list a child ``train`` reads."""
    return {**os.environ, OBSERVERS_ENV: json.dumps(list(observers))}


def _report_stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def run_tracked(
    request: RunRequest,
    *,
    backend: Any = None,
    report: Callable[[str], None] = _report_stderr,
) -> RunOutcome:
    """Validate ``request``, then train and record it; return how the run ended.

    Args:
        request: what to run.
        backend: replaces :mod:`capreolus_opt.config` (tests use a TensorFlow-free one;
            a search wraps it to see the metrics).
        report: receives notes and warnings meant for the user (one line each), e.g. a workdir
            taken over from a dead run.

    Raises:
        RunInputError: the run cannot start (see the module docstring); nothing was recorded.
    """
    from capreolus_opt.storage import mask_urls
    from capreolus_opt.tracking.redact import install_log_redaction
    from capreolus_opt.tracking.urls import close_observers, observers_from_urls

    install_log_redaction()
    _check_request(request)
    try:
        urls = observer_urls(request.observers)
        observers = observers_from_urls(urls)
    except ValueError as exc:
        raise RunInputError(mask_urls(str(exc))) from None
    try:
        return _run(request, urls, observers, backend or _gin_config(), report)
    finally:
        close_observers(observers)


def _check_request(request: RunRequest) -> None:
    for name in ("beat_every_s", "observer_wait_s"):
        value = getattr(request, name)
        if not isinstance(value, int | float) or not (0 < value < float("inf")):
            raise RunInputError(f"{name} must be a positive number of seconds, got {value!r}")
    if request.capture not in CAPTURE_MODES:
        raise RunInputError(f"capture {request.capture!r}: expected one of {CAPTURE_MODES}")
    if request.seed is not None and (
        isinstance(request.seed, bool) or not isinstance(request.seed, int) or request.seed < 0
    ):
        raise RunInputError(f"seed {request.seed!r}: expected an integer >= 0")


@dataclasses.dataclass(frozen=True)
class ParsedConfig:
    """The config of a run, parsed once: what the Sacred experiment records without parsing
    again (``hparams`` as ``[name, value]`` pairs, ``seed`` mirroring ``train.seed``)."""

    gin_files: list[str]
    gin_bindings: list[str]
    hparams: list[list[Any]]
    seed: int | None
    config_text: str


def parse_run_config(backend: Any, gin_files: list[str], gin_bindings: list[str]) -> ParsedConfig:
    """Parse the config with ``backend`` and collect what the record needs from it."""
    backend.parse_config(gin_files, gin_bindings)
    flat = list(backend.flat_hyperparameters())
    seed = dict(flat).get("train.seed")
    return ParsedConfig(
        gin_files=list(gin_files),
        gin_bindings=list(gin_bindings),
        hparams=hparam_pairs(flat),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        config_text=backend.config_text(),
    )


def _run(
    request: RunRequest,
    urls: list[str],
    observers: list,
    backend: Any,
    report: Callable[[str], None],
) -> RunOutcome:
    from capreolus_opt.storage import mask_urls
    from capreolus_opt.tracking.urls import ObserverUnreachableError, check_reachable

    gin_files, gin_bindings = list(request.gin_files), list(request.gin_bindings)
    workdir = request.workdir
    prior = None
    info: dict[str, Any] = {InfoKey.RUN_UUID: request.run_uuid or uuid.uuid4().hex, **request.info}
    if request.resume:
        if gin_files:
            raise RunInputError(
                "--resume takes the gin files of the run it continues; give no CONFIG."
            )
        try:
            prior = _find_prior(request.resume, urls)
        except ValueError as exc:
            raise RunInputError(mask_urls(f"--resume {request.resume!r}: {exc}")) from None
        gin_files, gin_bindings = prior.gin_files, prior.gin_bindings + gin_bindings
        workdir = workdir or prior.workdir
        info[InfoKey.RESUMED_FROM] = prior.run_uuid
    elif not gin_files:
        raise RunInputError(
            "no CONFIG.gin given (expected at least one gin file, or --resume RUN)."
        )
    # Absolute paths, so that the record can be rerun (and resumed) from any directory.
    gin_files = [os.path.abspath(path) for path in gin_files]
    if request.seed is not None:
        gin_bindings.append(f"train.seed = {request.seed}")
    try:
        parsed = parse_run_config(backend, gin_files, gin_bindings)
        if prior is not None:
            _check_resume(request.resume, prior, parsed, backend, info)
        # Bad values or data: nothing recorded. Legal values that are almost surely mistakes
        # come back as warnings (the run proceeds).
        found = getattr(backend, "validate_inputs", lambda: None)() or []
        check_reachable(observers)
    except (
        ValueError,
        TypeError,
        RuntimeError,
        ObserverUnreachableError,
        MissingExtraError,
    ) as exc:
        raise RunInputError(mask_urls(_one_line(exc))) from None
    for warning in found:
        report(f"warning: {warning}")
    try:
        held = _claim_workdir(workdir, info, report)
    except ValueError as exc:
        raise RunInputError(mask_urls(str(exc))) from None
    try:
        return _run_experiment(request, observers, backend, info, parsed, workdir)
    finally:
        if held is not None:
            from capreolus_opt.tracking.workdir import finish

            finish(held)


#: The bindings a resumed run may change (a backend may name its own as ``RESUME_MAY_CHANGE``):
#: how long it trains and what it records when, never what it computes.
RESUME_MAY_CHANGE = (
    "train.num_steps",
    "train.eval_every",
    "train.checkpoint_every",
    "train.max_checkpoints_to_keep",
    "train.metrics_every",
    "train.progress",
)


def _json_value(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _check_resume(ref: str, prior: Any, parsed: ParsedConfig, backend: Any, info: dict) -> None:
    """A resumed run trains what its run trained: only :data:`RESUME_MAY_CHANGE` bindings may
    differ, and a COMPLETED run (final) is continued only with more steps, recorded as
    ``info.continued_from``.

    Raises:
        ValueError: naming the binding that would change, or the steps needed.
    """
    allowed = set(getattr(backend, "RESUME_MAY_CHANGE", RESUME_MAY_CHANGE))
    steps_name = getattr(backend, "STEPS_PARAM", "train.num_steps")
    now = {name: _json_value(value) for name, value in parsed.hparams}
    before = {name: _json_value(value) for name, value in prior.hparams.items()}
    changed = [n for n in before if n in now and before[n] != now[n] and n not in allowed]
    if changed:
        name = changed[0]
        raise ValueError(
            f"--resume {ref}: {name} would change from {before[name]!r} to {now[name]!r}; a "
            f"resumed run keeps its run's bindings except {sorted(allowed)} (start a new run "
            "to change it)."
        )
    if prior.status != status.COMPLETED:
        return
    old, new = before.get(steps_name), now.get(steps_name)
    if not (isinstance(old, int) and isinstance(new, int) and new > old):
        raise ValueError(
            f"--resume {ref}: run {prior.run_uuid} is COMPLETED, and a finished run is final; to "
            f"train it further ask for more steps, e.g. --gin_param '{steps_name} = N' with N > "
            f"{old}."
        )
    info[InfoKey.CONTINUED_FROM] = prior.run_uuid


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (TensorFlow's errors span several)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def _claim_workdir(workdir: str, info: dict[str, Any], report: Callable[[str], None]) -> Any:
    """Claim the workdir the run will train in (the experiment's default when none is given)."""
    from capreolus_opt.storage.workdir_layout import Workdir
    from capreolus_opt.tracking.workdir import claim, is_chief_process

    if not is_chief_process():
        return None
    run_uuid = info[InfoKey.RUN_UUID]
    path = workdir or Workdir.for_run("", run_uuid).root
    held = claim(path, run_uuid=run_uuid, resumes=info.get(InfoKey.RESUMED_FROM))
    if held.took_over:
        report(f"note: workdir {held.path}: {held.took_over}; continuing it.")
    return held


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run_experiment(
    request: RunRequest,
    observers: list,
    backend: Any,
    info: dict[str, Any],
    parsed: ParsedConfig,
    workdir: str,
) -> RunOutcome:
    from capreolus_opt.storage import mask_urls
    from capreolus_opt.tracking.experiment import make_experiment
    from capreolus_opt.tracking.observers import incomplete_observers
    from capreolus_opt.tracking.sacred_private import release_captured_streams, run_id

    for observer in observers:
        if hasattr(observer, "final_wait_s"):
            observer.final_wait_s = request.observer_wait_s
    ex = make_experiment(backend=backend, flush_every_s=request.beat_every_s, parsed=parsed)
    ex.observers.extend(observers)
    run_uuid = info[InfoKey.RUN_UUID]
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    ended: RunOutcome | None = None
    try:
        run = ex.run(
            config_updates={
                ConfigKey.GIN_FILES: parsed.gin_files,
                ConfigKey.GIN_BINDINGS: parsed.gin_bindings,
                ConfigKey.WORKDIR: workdir,
            },
            info=info,
            options={"--capture": request.capture},
        )
    except KeyboardInterrupt as exc:
        reason = getattr(exc, "stopped_reason", "")  # e.g. "pruned" by a search (tune)
        ended = RunOutcome(
            run_uuid, status.INTERRUPTED, exit_codes.INTERRUPTED,
            stopped_reason=reason, message=str(exc),
        )  # fmt: skip
        if reason:
            return ended
    except Exception as exc:
        full = _disk_full(exc)
        ended = RunOutcome(
            run_uuid, status.FAILED, exit_codes.STORE_INCOMPLETE if full else exit_codes.FAILED,
            message=mask_urls(full or traceback.format_exc()),
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
        release_captured_streams()
    current = ex.current_run
    missing = tuple(mask_urls(m) for m in incomplete_observers(current)) if current else ()
    if ended is not None:
        return dataclasses.replace(ended, incomplete=missing, sacred_id=run_id(current))
    code = exit_codes.STORE_INCOMPLETE if missing else exit_codes.OK
    return RunOutcome(
        run_uuid, status.COMPLETED, code, result=run.result, incomplete=missing,
        sacred_id=run_id(run),
    )  # fmt: skip


def _disk_full(exc: BaseException | None) -> str:
    """One line when ``exc`` or an error behind it is a full disk or quota, else ``""``."""
    import errno

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full: {_one_line(exc)}"
        exc = exc.__cause__ or exc.__context__
    return ""


def _find_prior(ref: str, urls: list[str]) -> Any:
    """The recorded run ``ref`` names (run folder or UUID in ``urls``), checked resumable."""
    from capreolus_opt.records.load import find_recorded_run

    prior = find_recorded_run(ref, urls)
    if not prior.workdir:
        raise ValueError(
            f"run {prior.run_uuid} has no recorded workdir (it stopped before training started), "
            "so it cannot be resumed."
        )
    return prior


def _gin_config() -> Any:
    import importlib

    return importlib.import_module("capreolus_opt.config")
