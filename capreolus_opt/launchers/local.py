"""``--launcher local``: search workers as child processes of this machine.

Each worker is ``python -m capreolus_opt.search.worker`` with its spec in the environment (the
storage and observer URLs may hold passwords, and a child's argv is visible in ``ps``). The
children import the same ``capreolus_opt`` as this process (its folder leads ``PYTHONPATH``).
SIGTERM and SIGINT are passed on to every worker, each of which checkpoints its trial.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import capreolus_opt
from capreolus_opt.records import exit_codes

#: The folder holding the ``capreolus_opt`` package this process runs.
PACKAGE_ROOT = str(Path(capreolus_opt.__file__).resolve().parents[1])


def child_env(extra: Mapping[str, str] = ()) -> dict[str, str]:
    """This process's environment, with ``extra`` and our package first on ``PYTHONPATH``."""
    env = {**os.environ, **dict(extra)}
    paths = [PACKAGE_ROOT, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_workers(spec: Any, n_workers: int) -> int:
    """Run ``n_workers`` worker processes on ``spec``'s study; return the combined exit code."""
    from capreolus_opt.search.worker import SPEC_ENV

    procs: list[subprocess.Popen] = []

    def forward(signum: int, frame: Any) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(n_workers):
            worker = dataclasses.replace(spec, worker_index=index, parallel=True)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "capreolus_opt.search.worker"],
                    env=child_env({SPEC_ENV: worker.to_json()}),
                    stdin=subprocess.DEVNULL,
                )
            )
        codes = [proc.wait() for proc in procs]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return exit_codes.combined(codes)
