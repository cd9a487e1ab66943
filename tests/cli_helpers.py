"""Helpers for end-to-end tests that drive the real ``capreolus-opt`` command in a subprocess."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "gin_configs" / "smoke.gin")


def run_cli(
    *args: str, cwd: Path | str = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Runs ``capreolus-opt ARGS`` as a user would (a fresh interpreter) and captures its output."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def heavy_imports(code: str, heavy: tuple[str, ...]) -> list[str]:
    """The top-level packages of ``heavy`` that a fresh interpreter has imported once it has run
    ``code``, sorted."""
    report = f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))"
    probe = f"{code}\nimport sys\n{report}\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return ast.literal_eval(out.stdout.strip())


def model_weights(workdir: Path | str) -> dict[str, np.ndarray]:
    """Every variable in the latest checkpoint of ``workdir`` (model weights, optimizer moments,
    iteration count, group lrs), by checkpoint key.

    tf.train.Checkpoint stores a variable once, under the first path that reaches it, so the
    model's weights appear under ``optimizer/_trainable_variables/``; comparing every key checks
    them and the optimizer state together.
    """
    path = tf.train.latest_checkpoint(str(workdir))
    if path is None:
        raise AssertionError(f"no checkpoint in {workdir}")
    reader = tf.train.load_checkpoint(path)
    return {
        key: reader.get_tensor(key)
        for key in reader.get_variable_to_shape_map()
        if key.endswith("VARIABLE_VALUE")
    }


def checkpoint_step(workdir: Path | str) -> int:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(workdir)))
    return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


def assert_same_weights(a: dict, b: dict, *, rtol: float, atol: float = 0.0) -> None:
    assert a.keys() == b.keys() and a, "checkpoints hold different variables"
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol, err_msg=key)
