"""``experiments/train.py`` goes through the same tracked-run call as ``capreolus-opt train``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "train.py"


def _script():
    spec = importlib.util.spec_from_file_location("experiments_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sacred_style_arguments_become_a_run_request():
    script = _script()
    request = script.request_from_argv(
        ["with", 'gin_bindings=["train.num_steps = 2"]', "fast", "-F", "runs",
         "--sql=sqlite:///r.db", "-m", "host:27017:db"]
    )  # fmt: skip
    assert request.gin_files == [script.SMOKE_GIN]
    assert request.gin_bindings == ["train.num_steps = 2"]
    assert request.observers == ["file://runs", "sqlite:///r.db", "mongodb://host:27017/db"]
    with pytest.raises(ValueError, match="unknown config \\['lr'\\]"):
        script.request_from_argv(["with", "lr=3"])
    with pytest.raises(ValueError, match="unsupported option '-x'"):
        script.request_from_argv(["-x"])


@pytest.mark.slow
def test_the_script_claims_its_workdir_and_refuses_bad_values_unrecorded(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, str(SCRIPT), "with", "fast", "-F", str(tmp_path / "runs"), *args]
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip

    bad = run('gin_bindings=["train.num_steps = -1"]')
    assert bad.returncode == 2 and "train.num_steps = -1: expected" in bad.stderr, bad.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("[0-9]*"))
    good = run('gin_bindings=["train.num_steps = 2", "train.eval_every = 2", '
               '"train.checkpoint_every = 2"]', f"workdir={tmp_path / 'wd'}")  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "wd" / ".capreolus-owner.json").exists()
    assert (tmp_path / "runs" / "1" / "run.json").exists()
