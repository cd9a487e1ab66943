"""``--launcher slurm``: sweep points or search workers as one Slurm job array, via submitit.

Resources come from flags (``--slurm-partition``, ``--slurm-time`` minutes, ``--slurm-cpus`` per
task, ``--slurm-gpus`` per node, ``--slurm-mem``). Each array task runs its training in the job's
own Python process (submitit pickles the call into ``--slurm-folder``; the folder is private to
its owner, since observer and storage URLs may hold passwords and never go on a command line).

Preemption and time-out: Slurm sends SIGTERM (``--signal=TERM@<delay>`` asks for it
``--slurm-signal-delay`` seconds before the time limit, and preemption sends it anyway); the
training writes its checkpoint and stops (run INTERRUPTED, exit 130), and the task then requeues
itself (``scontrol requeue``). The requeued task resumes the same run with ``train --resume``
(a sweep point finds its run UUID in the folder's ``points/<index>.json``; a search worker finds
the interrupted trial's enqueued copy), so the records, joined by ``resumed_from``, have no gap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from capreolus_opt.launchers.local import PACKAGE_ROOT
from capreolus_opt.records import exit_codes
from capreolus_opt.records.schema import InfoKey


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and the ``--slurm-*`` resource flags (shared by sweep and tune)."""
    parser.add_argument(
        "--launcher", choices=("local", "slurm"), default="local",
        help="where points/workers run: this machine (default) or a Slurm job array",
    )  # fmt: skip
    group = parser.add_argument_group("slurm (with --launcher slurm)")
    group.add_argument("--slurm-partition", default=None, metavar="NAME")
    group.add_argument("--slurm-time", type=int, default=60, metavar="MIN", help="per task")
    group.add_argument("--slurm-cpus", type=int, default=None, metavar="N", help="per task")
    group.add_argument("--slurm-gpus", type=int, default=None, metavar="N", help="per node")
    group.add_argument("--slurm-mem", default=None, metavar="SIZE", help="per node, e.g. 16G")
    group.add_argument(
        "--slurm-signal-delay", type=int, default=90, metavar="S",
        help="SIGTERM this many seconds before the time limit (default 90)",
    )  # fmt: skip
    group.add_argument(
        "--slurm-folder", default="slurm_jobs", metavar="DIR",
        help="submitit's job files and logs (default ./slurm_jobs)",
    )  # fmt: skip
    group.add_argument(
        "--no-wait", action="store_true", help="return after submitting (print the job id)"
    )


def check_arguments(args: argparse.Namespace) -> None:
    """Raise ValueError naming a bad ``--slurm-*`` value."""
    for name in ("slurm_time", "slurm_cpus", "slurm_gpus", "slurm_signal_delay"):
        value = getattr(args, name)
        if value is not None and value < (0 if name in ("slurm_gpus",) else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.slurm_mem is not None and not args.slurm_mem[:-1].isdigit():
        raise ValueError(f"--slurm-mem {args.slurm_mem!r}: expected a size such as 16G or 800M")


def make_executor(args: argparse.Namespace, n_tasks: int) -> Any:
    """A submitit ``SlurmExecutor`` for an array of ``n_tasks`` with the flags' resources."""
    import shutil

    from capreolus_opt.optional import require

    submitit = require("submitit", "tune")
    check_arguments(args)
    if shutil.which("sbatch") is None:
        raise ValueError("--launcher slurm needs Slurm's sbatch on PATH (none found)")
    folder = Path(args.slurm_folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=1000)
    params: dict[str, Any] = {
        "time": args.slurm_time,
        "array_parallelism": n_tasks,
        # submitit's default is USR2 before the time limit; our training checkpoints on SIGTERM.
        "additional_parameters": {"signal": f"TERM@{args.slurm_signal_delay}", "requeue": True},
        "setup": [
            f"export PYTHONPATH={PACKAGE_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}",
            "export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}",
        ],
    }
    optional = {
        "partition": args.slurm_partition,
        "cpus_per_task": args.slurm_cpus,
        "gpus_per_node": args.slurm_gpus,
        "mem": args.slurm_mem,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    executor.update_parameters(**params)
    return executor


def submit_array(executor: Any, fn: Callable, payloads: Sequence[Any]) -> list:
    """``executor.map_array`` with sbatch's refusal (bad partition, resources) as ValueError."""
    try:
        return executor.map_array(fn, payloads)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.output or b"").decode(errors="replace").strip()
        raise ValueError(f"sbatch refused the job array: {detail or exc}") from None
    except Exception as exc:  # submitit wraps sbatch's failure in its own error types
        raise ValueError(f"sbatch refused the job array: {exc}") from None


def squeue(job_ids: Sequence[str], fields: str = "%i") -> str | None:
    """What squeue lists of ``job_ids``: a line per task in its ``-o`` format ``fields``; ""
    when it lists none of them or no longer knows them (Slurm purges a finished job after
    MinJobAge, and squeue then fails with "Invalid job id"); None when squeue failed otherwise
    (a busy slurmctld times out now and then), which means "ask again", never "gone"."""
    proc = subprocess.run(
        ["squeue", "-h", "-o", fields, "-j", ",".join(job_ids)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not proc.returncode:
        return proc.stdout.strip()
    return "" if "Invalid job id" in proc.stderr else None


def wait_for(jobs: Sequence[Any], poll_s: float = 2.0) -> list[tuple[str, Any]]:
    """Wait until no task of ``jobs`` is queued or running (requeued tasks included); return
    each job's ``("success", result)`` or ``("error", text)``."""
    from capreolus_opt.optional import require

    pickle_load = require("submitit.core.utils", "tune").pickle_load

    ids = sorted({job.job_id.split("_")[0] for job in jobs})
    while squeue(ids) != "":  # listed, or squeue failed for a moment: ask again
        time.sleep(poll_s)
    outcomes = []
    for job in jobs:
        path = job.paths.result_pickle
        for _ in range(10):  # the result file may land on a shared disk a moment later
            if path.exists():
                break
            time.sleep(0.5)
        if path.exists():
            outcomes.append(tuple(pickle_load(path)))
        else:
            outcomes.append(("error", f"no result; see {job.paths.stderr}"))
    return outcomes


def requeue_self() -> None:
    """Put this array task back in the queue (after its training checkpointed), then exit."""
    array_id, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_id}_{task}" if array_id and task else os.environ["SLURM_JOB_ID"]
    print(f"requeueing Slurm job {job_id} to resume", flush=True)
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=60)
    sys.exit(exit_codes.INTERRUPTED)


def _start_job() -> None:
    from capreolus_opt.tracking.quiet_import import import_tensorflow_quietly
    from capreolus_opt.tracking.redact import install_log_redaction

    install_log_redaction()
    import_tensorflow_quietly()


def _slurm_info() -> dict[str, str]:
    keys = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")
    return {k.removeprefix("SLURM_").lower(): os.environ[k] for k in keys if k in os.environ}


def sweep_point_job(point: dict) -> dict:
    """One sweep point in a Slurm task: train it, or resume its interrupted run after requeue.

    Returns the run's outcome as a JSON-able dict (:class:`RunOutcome` fields; ``run_uuid`` None
    and ``message`` the error when the point was refused).
    """
    import dataclasses

    from capreolus_opt.tracking.run import RunInputError, RunRequest, refused_outcome, run_tracked

    _start_job()
    state_path = Path(point["state"])
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("exit_code") == exit_codes.OK:
        return state  # the point finished before the task was requeued
    run_uuid = uuid.uuid4().hex
    fresh = RunRequest(
        gin_files=[point["config"]], gin_bindings=[*point["extra"], *point["bindings"]],
        workdir=point["workdir"], observers=point["observers"], run_uuid=run_uuid,
        info={InfoKey.SLURM: _slurm_info()},
    )  # fmt: skip
    request = fresh
    if state.get("run_uuid"):
        resume = state["run_uuid"]
        request = dataclasses.replace(fresh, gin_files=[], gin_bindings=[], resume=resume)
    state_path.write_text(json.dumps({"run_uuid": run_uuid}))
    try:
        try:
            outcome = run_tracked(request)
        except RunInputError:
            if not request.resume:
                raise
            outcome = run_tracked(fresh)  # its run never got recorded: train the point afresh
    except RunInputError as exc:
        result = refused_outcome(str(exc))
        state_path.write_text(json.dumps(result))
        return result
    if outcome.exit_code == exit_codes.INTERRUPTED:
        requeue_self()
    result = json.loads(outcome.to_json())
    state_path.write_text(json.dumps(result))
    return result


def tune_worker_job(spec_json: str) -> int:
    """One search worker in a Slurm task; requeues itself when its trial was interrupted."""
    from capreolus_opt.search.worker import SearchSpec, run_worker

    _start_job()
    code = run_worker(SearchSpec.from_json(spec_json))
    if code == exit_codes.INTERRUPTED:
        requeue_self()
    return code


def submit_sweep(
    args: argparse.Namespace,
    points: Sequence[list[str]],
    observers: Sequence[str],
    workdirs: Sequence[str],
    report: Callable[[int, Any], None],
) -> list | None:
    """Submit one array task per point; unless ``--no-wait``, wait and return PointResults."""
    from capreolus_opt.launchers.sweep import PointResult
    from capreolus_opt.tracking.run import RunOutcome

    executor = make_executor(args, len(points))
    state_dir = Path(args.slurm_folder).resolve() / f"sweep-{uuid.uuid4().hex[:8]}"
    state_dir.mkdir(mode=0o700)
    payloads = [
        {
            "config": os.path.abspath(args.config), "bindings": list(point),
            "extra": list(args.gin_param), "observers": list(observers), "workdir": workdir,
            "state": str(state_dir / f"{index}.json"),
        }
        for index, (point, workdir) in enumerate(zip(points, workdirs, strict=True))
    ]  # fmt: skip
    jobs = submit_array(executor, sweep_point_job, payloads)
    print(f"submitted Slurm job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} points)")
    if args.no_wait:
        return None
    results = []
    for index, ((kind, value), point) in enumerate(zip(wait_for(jobs), points, strict=True)):
        if kind == "success":
            outcome = RunOutcome.from_json(json.dumps(value)) if value.get("run_uuid") else None
            text = value.get("message") or ""
            result = PointResult(list(point), value["exit_code"], text, outcome)
        else:
            result = PointResult(list(point), 1, str(value))
        report(index, result)
        results.append(result)
    return results


def submit_tune(args: argparse.Namespace, spec: Any, n_workers: int) -> int | None:
    """Submit ``n_workers`` search workers as an array; unless ``--no-wait``, wait for them."""
    import dataclasses

    executor = make_executor(args, n_workers)
    specs = [
        dataclasses.replace(spec, worker_index=i, parallel=True).to_json() for i in range(n_workers)
    ]
    jobs = submit_array(executor, tune_worker_job, specs)
    print(f"submitted Slurm job array {jobs[0].job_id.split('_')[0]} ({n_workers} workers)")
    if args.no_wait:
        return None
    codes = []
    for job, (kind, value) in zip(jobs, wait_for(jobs), strict=True):
        if kind != "success":
            print(f"worker {job.job_id} failed:\n{value}", file=sys.stderr)
        codes.append(value if kind == "success" else 1)
    return exit_codes.combined(codes)
