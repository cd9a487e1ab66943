"""Launchers without a cluster: the sbatch script our flags produce, the environment workers get,
and URLs with passwords kept off child argvs."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

import pytest

from capreolus_opt.cli import main as run_cli
from capreolus_opt.launchers import local, slurm, sweep
from capreolus_opt.records import exit_codes

ROOT = Path(__file__).resolve().parents[2]


def _slurm_args(tmp_path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    slurm.add_launcher_arguments(parser)
    return parser.parse_args(["--slurm-folder", str(tmp_path / "jobs"), *argv])


def test_flags_become_the_sbatch_resources_and_a_sigterm_before_the_time_limit(
    tmp_path, monkeypatch
):
    # The executor only checks that sbatch and srun exist; this test reads the script and runs
    # neither, so inert ones on PATH let it run on machines without Slurm.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    args = _slurm_args(tmp_path, "--launcher", "slurm", "--slurm-partition", "gpu",
                       "--slurm-time", "120", "--slurm-cpus", "4", "--slurm-gpus", "1",
                       "--slurm-mem", "16G", "--slurm-signal-delay", "300")  # fmt: skip
    executor = slurm.make_executor(args, n_tasks=3)
    script = executor._make_submission_file_text("python -m x", "uid")
    for line in ("--partition=gpu", "--time=120", "--cpus-per-task=4", "--gpus-per-node=1",
                 "--mem=16G", "--signal=TERM@300", "--requeue"):  # fmt: skip
        assert f"#SBATCH {line}" in script.splitlines(), script
    assert "USR2" not in script  # submitit's default signal would not reach our checkpointing
    assert f"export PYTHONPATH={local.PACKAGE_ROOT}" in script
    assert (tmp_path / "jobs").stat().st_mode & 0o777 == 0o700  # pickled URLs stay private


@pytest.mark.parametrize(
    ("flag", "value"), [("--slurm-time", "0"), ("--slurm-cpus", "-1"), ("--slurm-mem", "lots")]
)
def test_bad_slurm_flags_are_refused(tmp_path, flag, value):
    with pytest.raises(ValueError, match=flag):
        slurm.check_arguments(_slurm_args(tmp_path, flag, value))


def test_workers_import_this_package_and_exit_codes_combine():
    env = local.child_env({"X": "1"})
    assert env["PYTHONPATH"].split(os.pathsep)[0] == local.PACKAGE_ROOT and env["X"] == "1"
    assert exit_codes.combined([0, 130, 2]) == 2
    assert exit_codes.combined([0, 130]) == 130
    assert exit_codes.combined([0, 1]) == 1 and exit_codes.combined([0, 0]) == 0


def test_sweep_keeps_urls_with_passwords_off_the_argv(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    secret = "postgresql://u:hunter2@db/runs"
    argv = ["sweep", "gin_configs/smoke.gin", "--grid", "AdamMultilr.learning_rate=[1e-3]",
            "--observer", secret, "--dry-run"]  # fmt: skip
    assert run_cli(argv) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert "hunter2" not in line and "--observer" not in shlex.split(line)
    env = sweep.observer_environment([secret])
    assert json.loads(env["CAPREOLUS_OPT_OBSERVERS"]) == [secret]


def test_train_reads_observers_from_the_environment(tmp_path, monkeypatch):
    from capreolus_opt.tracking import run as cli

    monkeypatch.setenv("CAPREOLUS_OPT_OBSERVERS", json.dumps([f"file://{tmp_path}/envruns"]))
    assert cli.observer_urls(None) == [f"file://{tmp_path}/envruns"]
    monkeypatch.setenv("CAPREOLUS_OPT_OBSERVERS", "not json")
    with pytest.raises(ValueError, match="CAPREOLUS_OPT_OBSERVERS"):
        cli.observer_urls(None)


@pytest.mark.slow
def test_the_cli_parser_imports_neither_optuna_nor_submitit_nor_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from capreolus_opt.cli import build_parser; build_parser(); "
        "print([m for m in ('optuna', 'submitit', 'tensorflow') if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "[]", out.stderr
