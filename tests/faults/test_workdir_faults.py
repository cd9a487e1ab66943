"""A workdir belongs to one run: two trainings at once, and a new run in a finished workdir.

Through the real CLI: the second live process gets exit 2 naming the holder, a run with other
hyperparameters in a finished workdir gets exit 2 naming the owner, and neither records
anything. Fast in-process checks of :mod:`capreolus_opt.tracking.workdir` follow.
"""

from __future__ import annotations

import json
import os

import pytest

from capreolus_opt.tracking import workdir
from tests.cli_helpers import run_cli
from tests.faults.fault_tools import TrainProcess, file_steps, smoke_args, wait_until


def _run_folders(runs) -> list:
    return [p for p in runs.iterdir() if p.name.isdigit()] if runs.is_dir() else []


@pytest.mark.slow
def test_two_trainings_in_one_workdir(tmp_path):
    runs, work = tmp_path / "runs", str(tmp_path / "w")
    first = TrainProcess(
        smoke_args(120, "--observer", f"file://{runs}", "--workdir", work), tmp_path
    )
    try:
        wait_until(lambda: file_steps(runs), "the first run to train")
        first.pause()  # still training (and holding the lock) whatever the machine's speed
        (folder,) = _run_folders(runs)
        owner = json.loads((folder / "info.json").read_text())["run_uuid"]
        other = tmp_path / "other"
        second = run_cli(
            "train", *smoke_args(8, "--observer", f"file://{other}", "--workdir", work)
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"is in use by run {owner} (pid {first.proc.pid}" in second.stderr
        assert _run_folders(other) == []  # refused before anything was recorded
        first.cont()
        code, out = first.wait()
    finally:
        first.close()
    assert code == 0, out

    # A finished workdir: another run (other hyperparameters) would train 0 steps on its weights.
    again = run_cli(
        "train",
        *smoke_args(120, "--observer", f"file://{other}", "--workdir", work),
        "--gin_param", "AdamMultilr.learning_rate = 0.5",
    )  # fmt: skip
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"belongs to run {owner}" in again.stderr and f"--resume {owner}" in again.stderr
    assert _run_folders(other) == []


def test_claim_refuses_a_live_holder_and_names_it(tmp_path):
    held = workdir.claim(str(tmp_path / "w"), run_uuid="a" * 32)
    try:
        with pytest.raises(
            workdir.WorkdirError, match=f"in use by run {'a' * 32} .pid {os.getpid()}"
        ):
            workdir.claim(str(tmp_path / "w"), run_uuid="b" * 32, resumes="a" * 32)
    finally:
        workdir.finish(held)


def test_only_the_owner_continues_and_the_chain_is_kept(tmp_path):
    path = str(tmp_path / "w")
    workdir.finish(workdir.claim(path, run_uuid="a" * 32))
    with pytest.raises(workdir.WorkdirError, match=f"belongs to run {'a' * 32}"):
        workdir.claim(path, run_uuid="b" * 32)
    workdir.finish(workdir.claim(path, run_uuid="b" * 32, resumes="a" * 32))
    with pytest.raises(workdir.WorkdirError, match=f"not to run {'a' * 32}"):
        workdir.claim(path, run_uuid="c" * 32, resumes="a" * 32)
    owner = json.loads((tmp_path / "w" / workdir.OWNER_FILE).read_text())
    assert owner["run_uuid"] == "b" * 32 and owner["chain"] == ["a" * 32]
    assert owner["state"] == "ended"


def test_a_dead_holder_is_taken_over_and_reported(tmp_path):
    path = str(tmp_path / "w")
    held = workdir.claim(path, run_uuid="a" * 32)
    held.release()  # as a SIGKILL would: the lock goes, the owner file still says "training"
    again = workdir.claim(path, run_uuid="b" * 32, resumes="a" * 32)
    try:
        assert again.took_over is not None and "did not finish" in again.took_over
        assert f"run {'a' * 32}" in again.took_over
    finally:
        workdir.finish(again)


def test_checkpoints_without_an_owner_need_resume(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "checkpoint").write_text("model_checkpoint_path: 'ckpt-8'\n")
    with pytest.raises(workdir.WorkdirError, match="recorded no owner"):
        workdir.claim(str(tmp_path / "w"), run_uuid="a" * 32)
    workdir.finish(workdir.claim(str(tmp_path / "w"), run_uuid="a" * 32, resumes="0" * 32))


def test_a_garbage_owner_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / workdir.OWNER_FILE).write_text("{not json")
    with pytest.raises(workdir.WorkdirError, match="capreolus-owner.json is unreadable"):
        workdir.claim(str(tmp_path / "w"), run_uuid="a" * 32)


@pytest.mark.parametrize(
    ("tf_config", "chief"),
    [
        ("", True),
        ('{"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}', True),
        ('{"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}', False),
        ('{"cluster": {"chief": ["a"], "worker": ["b"]}, "task": {"type": "worker"}}', False),
    ],
)
def test_only_the_chief_process_claims(tf_config, chief):
    assert workdir.is_chief_process({"TF_CONFIG": tf_config}) is chief
