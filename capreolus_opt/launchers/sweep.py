"""``sweep``: one tracked ``capreolus-opt train`` process per point of a gin-binding grid.

``--grid 'AdamMultilr.learning_rate=[1e-3, 3e-4]'`` gives a binding and its values, written as
gin literals (numbers, ``True``/``False``/``None``, quoted strings, lists/tuples) or gin
references (``@name``, ``%MACRO``). Several ``--grid`` options form their Cartesian product, in the
order given. Each point runs ``python -m capreolus_opt.cli train CONFIG --gin_param 'NAME = VALUE'
...`` in its own process, with the observer URLs in its environment (``CAPREOLUS_OPT_OBSERVERS``,
a JSON list), never on its command line, where ``ps`` would show any password to every user of
the machine; up to ``--parallel`` run at once; a failed point is reported (exit status and the
tail of its output) and does not stop the others.

Each point's ``train`` writes its outcome (run UUID, status, exit code; :class:`RunOutcome`) as
JSON to a file the sweep names with ``--outcome-json``. The sweep's runs are then found in the
first observer: those whose UUID a point reported, and those that started after the sweep did
with a point's bindings in their recorded ``gin_bindings`` (a run killed before it reported).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from capreolus_opt.tracking.run import OBSERVERS_ENV, RunOutcome


@dataclasses.dataclass
class PointResult:
    """Outcome of one grid point's training: its process's exit code and output, and the
    run's outcome when one was recorded (None: refused, or the process died first)."""

    bindings: list[str]
    returncode: int
    output: str
    outcome: RunOutcome | None = None

    @property
    def run_uuid(self) -> str | None:
        """The UUID of the point's run, if it got that far."""
        return self.outcome.run_uuid if self.outcome is not None else None


def read_outcome(path: str) -> RunOutcome | None:
    """The outcome a point's ``train --outcome-json`` wrote (None: none, or no run recorded)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None
    try:
        data = json.loads(text)
        return RunOutcome.from_json(text) if data.get("run_uuid") else None
    except (ValueError, TypeError, AttributeError):
        return None


def train_command(
    config: str,
    bindings: Sequence[str],
    extra: Sequence[str] = (),
    workdir: str = "",
) -> list[str]:
    """The argv that trains one point (the current interpreter, so the same environment).

    The observers travel in the environment (:func:`observer_environment`), not on argv.
    ``workdir`` is passed as ``--workdir`` when given; points must not share one.
    """
    argv = [sys.executable, "-m", "capreolus_opt.cli", "train", config]
    if workdir:
        argv += ["--workdir", workdir]
    for binding in [*extra, *bindings]:
        argv += ["--gin_param", binding]
    return argv


def observer_environment(observers: Sequence[str]) -> dict[str, str]:
    """The environment of a point's process: ours plus the observer URLs as a JSON list."""
    from capreolus_opt.tracking.run import observer_environment as environment

    return environment(observers)


def shown_command(argv: Sequence[str], observers: Sequence[str]) -> str:
    """A point's command line as a shell would take it, the observer URLs masked."""
    import shlex

    from capreolus_opt.storage import mask_url

    shown = json.dumps([mask_url(url) for url in observers])
    return f"{OBSERVERS_ENV}={shlex.quote(shown)} {shlex.join(argv)}"


def run_points(
    argvs: Sequence[list[str]],
    points: Sequence[list[str]],
    parallel: int,
    on_done: Callable[[int, PointResult], None] | None = None,
    env: dict[str, str] | None = None,
) -> list[PointResult]:
    """Run every ``train`` argv (at most ``parallel`` at once) in ``env``, each told to write
    its outcome as JSON (``--outcome-json``); never raises for a failing process."""
    if parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {parallel}")

    def one(index: int, folder: str) -> PointResult:
        path = os.path.join(folder, f"{index}.json")
        try:
            proc = subprocess.run(
                [*argvs[index], "--outcome-json", path],
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            output = proc.stdout + proc.stderr
            result = PointResult(points[index], proc.returncode, output, read_outcome(path))
        except OSError as exc:
            result = PointResult(points[index], -1, f"could not start: {exc}")
        if on_done is not None:
            on_done(index, result)
        return result

    with tempfile.TemporaryDirectory(prefix="capreolus-sweep-") as folder:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return list(pool.map(lambda i: one(i, folder), range(len(argvs))))


def point_workdir(root: str) -> str:
    """A fresh checkpoint folder under ``root`` for one point (never an earlier point's)."""
    import os
    import uuid

    return os.path.join(root, f"sweep-{uuid.uuid4().hex[:12]}")


def utcnow() -> dt.datetime:
    """Naive UTC now, the convention of Sacred's stored start times."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _normalise(binding: str) -> str:
    name, _, value = binding.partition("=")
    return f"{name.strip()}={value.strip()}"


def sweep_runs(
    runs: Sequence, points: Sequence[list[str]], started: dt.datetime, uuids: Sequence[str] = ()
) -> list:
    """The runs of this sweep: a reported UUID, or started after ``started`` with a point's
    bindings recorded (whitespace around ``=`` ignored)."""
    wanted = [{_normalise(b) for b in point} for point in points]
    out = []
    for run in runs:
        if run.run_uuid in uuids:
            out.append(run)
            continue
        if run.start_time is None or run.start_time < started:
            continue
        recorded = {_normalise(b) for b in run.gin_bindings}
        if any(point <= recorded for point in wanted):
            out.append(run)
    return out
