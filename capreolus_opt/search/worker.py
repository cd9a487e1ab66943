"""A search worker: ask the shared study for trials and train them until it has N.

Several workers (processes, machines, Slurm array tasks) run :func:`run_worker` on one study; the
storage hands out trials atomically, so no trial runs twice. ``n_trials`` counts the study's
trials, not this worker's: a worker stops when the study holds N counted trials (finished or
running); one that asked at the same moment as another and got trial number >= N retires it
unrun (``stopped_reason: surplus``). Interrupted trials do not count: their enqueued copy does.

Run as ``python -m capreolus_opt.search.worker`` it reads its :class:`SearchSpec` as JSON from the
environment variable ``CAPREOLUS_TUNE_SPEC`` (never argv: URLs may hold passwords).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from capreolus_opt.optional import require
from capreolus_opt.records import exit_codes, status
from capreolus_opt.search import trial as trials
from capreolus_opt.search.space import grid_search_space, parse_spaces

SPEC_ENV = "CAPREOLUS_TUNE_SPEC"
UNCOUNTED = ("interrupted", "surplus", "died")
#: Seconds between a running trial's heartbeats (its ``heartbeat`` user attribute).
HEARTBEAT_S = 10.0
#: A RUNNING trial without a heartbeat for this long belongs to a dead worker.
STALE_AFTER_S = 6 * HEARTBEAT_S


@dataclasses.dataclass
class SearchSpec:
    """Everything a worker needs (JSON-able, so it travels to child processes and Slurm jobs)."""

    config: list[str]
    spaces: list[str]
    metric: str
    direction: str
    study: str
    storage: str
    n_trials: int
    sampler: str = "tpe"
    seed: int | None = None
    pruner: str = "none"
    pruner_startup_trials: int = 5
    pruner_warmup_steps: int = 0
    gin_param: list[str] = dataclasses.field(default_factory=list)
    observers: list[str] = dataclasses.field(default_factory=list)
    workdir_root: str = ""
    capture: str = "sys"
    parallel: bool = False
    worker_index: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SearchSpec:
        return cls(**json.loads(text))


def make_grid_sampler(dims: list, seed: int | None = None) -> Any:
    """Optuna's ``GridSampler`` over ``dims`` (the sweep's grid), for ask-and-tell workers.

    Its ``after_trial`` calls ``Study.stop()`` once the grid is visited, which raises
    RuntimeError outside ``Study.optimize``; our workers stop by counting trials instead.
    """
    optuna = require("optuna", "tune")

    class AskTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGridSampler(grid_search_space(dims), seed=seed)


def make_sampler(spec: SearchSpec, dims: list) -> Any:
    optuna = require("optuna", "tune")

    # Workers given one seed would draw the same points: each offsets it by its index.
    seed = None if spec.seed is None else spec.seed + spec.worker_index
    if spec.sampler == "grid":
        return make_grid_sampler(dims, seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(f"--sampler {spec.sampler!r}: expected tpe, random or grid")


def make_pruner(spec: SearchSpec) -> Any:
    optuna = require("optuna", "tune")

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.pruner_startup_trials, n_warmup_steps=spec.pruner_warmup_steps
        )
    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"--pruner {spec.pruner!r}: expected median or none")


def open_study(spec: SearchSpec) -> tuple[Any, list]:
    """Create or load the study; refuse one created for another search (ValueError)."""
    optuna = require("optuna", "tune")

    from capreolus_opt.search.storage import open_storage

    dims = parse_spaces(spec.spaces)
    study = optuna.create_study(
        study_name=spec.study,
        storage=open_storage(spec.storage, parallel=spec.parallel),
        direction=spec.direction,
        sampler=make_sampler(spec, dims),
        pruner=make_pruner(spec),
        load_if_exists=True,
    )
    wanted = {"spaces": [d.spec() for d in dims], "metric": spec.metric}
    attrs = study.user_attrs
    if "spaces" not in attrs:
        for key, value in {**wanted, "config": spec.config}.items():
            study.set_user_attr(key, value)
    elif {k: attrs.get(k) for k in wanted} != wanted:
        raise ValueError(
            f"study {spec.study!r} searches {attrs.get('spaces')} for {attrs.get('metric')!r}, "
            f"not {wanted['spaces']} for {spec.metric!r}: use another --study name"
        )
    direction = study.direction.name.lower()
    if direction != spec.direction:
        raise ValueError(f"study {spec.study!r} is to {direction}, not to {spec.direction}")
    return study, dims


class TrialHeartbeat:
    """While its trial trains, write the time into the trial's ``heartbeat`` user attribute
    every :data:`HEARTBEAT_S` seconds from a thread (ask-and-tell workers get no heartbeat from
    Optuna, whose own runs only inside ``Study.optimize`` and only for RDB storages)."""

    def __init__(self, trial: Any, interval: float = HEARTBEAT_S) -> None:
        self._trial, self._interval = trial, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trial-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self._trial.set_user_attr("heartbeat", time.time())
            except Exception:  # a storage hiccup: the next beat tries again
                pass
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> TrialHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def fail_dead_trials(study: Any, now: float | None = None) -> list[int]:
    """Fail every RUNNING trial whose worker died (no heartbeat for :data:`STALE_AFTER_S`; a
    trial that never beat counts from its start) and enqueue a copy that resumes its run, as
    for an interrupted trial; returns the numbers of the trials failed.

    The dead trial's run record still says RUNNING; readers show it as DIED once its own
    heartbeat is stale (records/record.py), which happens well before :data:`STALE_AFTER_S`.
    """
    from capreolus_opt.search.optuna_compat import fail_trial

    TrialState = require("optuna.trial", "tune").TrialState

    now = time.time() if now is None else now
    failed = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        start = frozen.datetime_start.timestamp() if frozen.datetime_start else now
        last = frozen.user_attrs.get("heartbeat", start)
        if now - float(last) <= STALE_AFTER_S:
            continue
        # Of several workers starting at once, only the one whose state change succeeds
        # enqueues the copy.
        if not fail_trial(study, frozen, "died"):
            continue
        attrs = {
            "resumes_trial": frozen.number,
            "earlier_values": sorted([s, v] for s, v in frozen.intermediate_values.items()),
        }
        if frozen.user_attrs.get("run_uuid"):
            attrs["resume_run"] = frozen.user_attrs["run_uuid"]
        study.enqueue_trial(dict(frozen.params), user_attrs=attrs)
        print(f"trial {frozen.number}: its worker died (no heartbeat for "
              f"{now - float(last):.0f} s); failed, and enqueued again to resume its run",
              file=sys.stderr)  # fmt: skip
        failed.append(frozen.number)
    return failed


def _counted(t: Any) -> bool:
    return t.user_attrs.get("stopped_reason") not in UNCOUNTED


def _study_full(study: Any, n_trials: int) -> bool:
    TrialState = require("optuna.trial", "tune").TrialState

    all_trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in all_trials):
        return False
    return sum(_counted(t) for t in all_trials) >= n_trials


def _is_surplus(study: Any, trial: Any, n_trials: int) -> bool:
    if "resumes_trial" in trial.user_attrs:  # a copy of an interrupted or dead trial
        return False
    before = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
    return sum(_counted(t) for t in before) >= n_trials


def _tell(study: Any, trial: Any, outcome: trials.TrialOutcome, metric: str) -> int | None:
    """Record the outcome in the study; return an exit code when the worker must stop."""
    TrialState = require("optuna.trial", "tune").TrialState

    code = outcome.returncode
    if code == exit_codes.OK and outcome.value is not None:
        study.tell(trial, outcome.value)
        return None
    if code == exit_codes.INTERRUPTED and outcome.pruned:
        trial.set_user_attr("stopped_reason", status.PRUNED_REASON)
        study.tell(trial, state=TrialState.PRUNED)
        return None
    if code == exit_codes.INTERRUPTED:
        frozen = study.get_trials(deepcopy=False)[trial.number]
        trial.set_user_attr("stopped_reason", "interrupted")
        study.enqueue_trial(
            dict(frozen.params),
            user_attrs={
                "resume_run": outcome.run_uuid,
                "resumes_trial": trial.number,
                "earlier_values": sorted([s, v] for s, v in frozen.intermediate_values.items()),
            },
        )
        study.tell(trial, state=TrialState.FAIL)
        return exit_codes.INTERRUPTED
    if code == exit_codes.OK:
        trial.set_user_attr("stopped_reason", f"{metric} was never evaluated")
        study.tell(trial, state=TrialState.FAIL)
        print(f"error: the runs log no {metric!r} (give an eval/ metric the task computes)",
              file=sys.stderr)  # fmt: skip
        return exit_codes.INPUT
    trial.set_user_attr("stopped_reason", "failed" if code == exit_codes.FAILED else "bad input")
    study.tell(trial, state=TrialState.FAIL)
    return exit_codes.INPUT if code == exit_codes.INPUT else None


def run_worker(spec: SearchSpec, backend: Any = None) -> int:
    """Train trials of ``spec.study`` until it holds ``spec.n_trials``; return an exit code
    (0 done, 1 some trial's run FAILED, 2 bad input, 130 interrupted: the trial will resume)."""
    from capreolus_opt.search.storage import StorageError
    from capreolus_opt.tracking.redact import REDACTOR

    try:
        study, dims = open_study(spec)
    except (StorageError, ValueError) as exc:
        print(f"error: {REDACTOR.redact(str(exc))}", file=sys.stderr)
        return exit_codes.INPUT
    except Exception as exc:  # an unreachable server, a driver error: nothing was started
        cause = REDACTOR.redact(f"{type(exc).__name__}: {exc}")
        print(f"error: cannot open study {spec.study!r}: {cause}", file=sys.stderr)
        return exit_codes.INPUT
    fail_dead_trials(study)
    if backend is None:  # TensorFlow only once the study opened (a bad storage fails fast)
        import importlib

        from capreolus_opt.tracking.quiet_import import import_tensorflow_quietly

        import_tensorflow_quietly()
        backend = importlib.import_module("capreolus_opt.config")
    stop: list[int] = []
    failed = 0
    # Between trials a signal only stops the loop (a trial's training handles its own).
    previous = {
        s: signal.signal(s, lambda signum, frame: stop.append(signum))
        for s in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        while not stop and not _study_full(study, spec.n_trials):
            trial = study.ask()
            if _is_surplus(study, trial, spec.n_trials):
                trial.set_user_attr("stopped_reason", "surplus")
                study.tell(trial, state=_fail_state())
                break
            with TrialHeartbeat(trial):
                outcome = trials.run_trial(spec, trial, dims, backend)
            print(f"trial {trial.number}: run {outcome.run_uuid} exit {outcome.returncode}",
                  flush=True)  # fmt: skip
            code = _tell(study, trial, outcome, spec.metric)
            if code is not None:
                return code
            failed += outcome.returncode == exit_codes.FAILED
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop:
        return exit_codes.INTERRUPTED
    return exit_codes.FAILED if failed else exit_codes.OK


def _fail_state() -> Any:
    TrialState = require("optuna.trial", "tune").TrialState

    return TrialState.FAIL


def main() -> int:
    """Entry of a child worker: the spec comes from ``$CAPREOLUS_TUNE_SPEC``."""
    text = os.environ.get(SPEC_ENV)
    if not text:
        print(f"error: {SPEC_ENV} is not set (this module is started by capreolus-opt tune)",
              file=sys.stderr)  # fmt: skip
        return exit_codes.INPUT
    from capreolus_opt.tracking.redact import install_log_redaction

    install_log_redaction()
    return run_worker(SearchSpec.from_json(text))


if __name__ == "__main__":
    sys.exit(main())
