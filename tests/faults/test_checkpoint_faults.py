"""Fault injection: damaged checkpoints written by real trainings.

A truncated data file, a truncated index, a garbage or missing ``checkpoint`` state file: the
run falls back to the newest readable checkpoint with a warning naming the damaged file, and
never starts again from step 0 over checkpoints it cannot read (then the error names them).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from capreolus_opt import AdamMultilr
from capreolus_opt.training import make_strategy, train
from capreolus_opt.training.checkpoints import CheckpointFallbackWarning, CheckpointReadError
from tests.cli_helpers import SMOKE, checkpoint_step, run_cli
from tests.training.regression_task import RegressionTask, checkpoint_tensors

DATA = "ckpt-{}.data-00000-of-00001"


def optimizer() -> AdamMultilr:
    return AdamMultilr(
        learning_rate=0.01,
        pattern_lrs=[{"patterns": ["encoder/"], "lr": 0.02, "name": "encoder"}],
    )


def run(workdir: Path, num_steps: int, **kwargs):
    kwargs.setdefault("task", RegressionTask())
    return train(
        optimizer=optimizer,
        strategy=make_strategy("default"),
        workdir=str(workdir),
        num_steps=num_steps,
        global_batch_size=8,
        seed=3,
        progress=False,
        checkpoint_every=2,
        **kwargs,
    )


def fallback_warnings(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``fn()`` and the CheckpointFallbackWarning messages it emitted.

    Recorded by hand: ``pytest.warns`` re-raises the other warnings it caught (a Keras
    DeprecationWarning under the `error` filter, without the module that the ignore rule names).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CheckpointFallbackWarning)
        try:
            result = fn()
        except CheckpointReadError as err:
            result = err
    return result, [str(w.message) for w in caught if w.category is CheckpointFallbackWarning]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damaged", [DATA.format(4), "ckpt-4.index"])
def test_truncated_newest_checkpoint_falls_back_with_a_warning_naming_the_file(
    tmp_path: Path, damaged: str
) -> None:
    run(tmp_path / "w", num_steps=4)
    truncate(tmp_path / "w" / damaged)
    starts: list[dict] = []
    resumed, messages = fallback_warnings(
        lambda: run(tmp_path / "w", num_steps=6, on_start=starts.append)
    )
    (message,) = messages
    assert re.fullmatch(
        rf".*/w/{damaged} cannot be read \(.+\); falling back to .*/ckpt-2", message
    )
    assert starts[0]["start_step"] == 2
    assert starts[0]["restored_from"] == str(tmp_path / "w" / "ckpt-2")
    # Training resumed at step 2 follows the uninterrupted trajectory exactly.
    full = run(tmp_path / "full", num_steps=6)
    a, b = checkpoint_tensors(full.checkpoint_path), checkpoint_tensors(resumed.checkpoint_path)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=0, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("state", [b"garbage {{ \x00\xff", None])
def test_garbage_or_missing_state_file_uses_the_newest_checkpoint_file(
    tmp_path: Path, state: bytes | None
) -> None:
    run(tmp_path, num_steps=4)
    if state is None:
        (tmp_path / "checkpoint").unlink()
    else:
        (tmp_path / "checkpoint").write_bytes(state)
    what = "is missing" if state is None else "is unreadable (not a checkpoint list)"
    if state is not None:
        what += f" (moved aside to {tmp_path / 'checkpoint.unreadable'})"
    starts: list[dict] = []
    result, messages = fallback_warnings(lambda: run(tmp_path, num_steps=6, on_start=starts.append))
    assert messages == [
        f"checkpoint state file {tmp_path / 'checkpoint'} {what}"
        + f"; falling back to checkpoint {tmp_path / 'ckpt-4'}"
    ]
    assert starts[0]["start_step"] == 4 and result.final_step == 6
    if state is not None:  # kept for inspection; the last save wrote a good state file
        assert (tmp_path / "checkpoint.unreadable").read_bytes() == state
        assert result.checkpoint_path == str(tmp_path / "ckpt-6")


def test_no_readable_checkpoint_is_an_error_naming_every_damaged_file(tmp_path: Path) -> None:
    run(tmp_path, num_steps=4)
    truncate(tmp_path / DATA.format(4))
    truncate(tmp_path / "ckpt-2.index")
    error, messages = fallback_warnings(lambda: run(tmp_path, num_steps=6))
    assert isinstance(error, CheckpointReadError) and len(messages) == 1
    assert DATA.format(4) in messages[0] and messages[0].endswith("ckpt-2")
    message = str(error)
    assert str(tmp_path / DATA.format(4)) in message and str(tmp_path / "ckpt-2.index") in message
    assert "Refusing to start again from step 0" in message


def test_garbage_state_file_without_checkpoint_files_is_an_error(tmp_path: Path) -> None:
    tmp_path.joinpath("checkpoint").write_text("not a checkpoint list")
    with pytest.raises(CheckpointReadError, match=r"checkpoint state file .*checkpoint is unread"):
        run(tmp_path, num_steps=2)


class WiderTask(RegressionTask):
    def build_model(self) -> keras.Model:
        return keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(5, name="encoder"), keras.layers.Dense(1)]
        )


def test_checkpoint_of_another_model_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    run(tmp_path, num_steps=4)
    error, messages = fallback_warnings(
        lambda: pytest.raises(ValueError, run, tmp_path, num_steps=6, task=WiderTask())
    )
    assert messages == []  # a shape mismatch is not mistaken for a damaged file
    assert re.search(
        r"checkpoint .*ckpt-4 does not match the model .*shape \(6, 4\)", str(error.value)
    )


# ------------------------------------------------------------------ through the real CLI
def cli_train(tmp_path: Path, *bindings: str, resume: str | None = None):
    """Train smoke.gin into ``tmp_path/w``; with ``resume``, continue that run (the workdir
    belongs to the run that made it, so only its continuation may train there again)."""
    config = ["--resume", resume] if resume else [SMOKE]
    args = ["train", *config, "--workdir", str(tmp_path / "w"), "--observer"]
    args.append(f"file://{tmp_path / 'runs'}")
    for binding in bindings:
        args += ["--gin_param", binding]
    return run_cli(*args)


def run_uuid(proc) -> str:
    match = re.search(r"^run ([0-9a-f]{32}) ", proc.stdout, re.MULTILINE)
    assert match, proc.stdout + proc.stderr
    return match.group(1)


def recorded(tmp_path: Path, run_id: int) -> tuple[str, list[int]]:
    folder = tmp_path / "runs" / str(run_id)
    status = json.loads((folder / "run.json").read_text())["status"]
    path = folder / "metrics.json"  # written once there is a point to store
    metrics = json.loads(path.read_text()) if path.exists() else {}
    return status, metrics.get("train/loss", {}).get("steps", [])


@pytest.mark.slow
def test_cli_truncated_checkpoint_falls_back_and_garbage_state_resumes(tmp_path: Path) -> None:
    first = cli_train(tmp_path)  # smoke.gin: 8 steps, checkpoints at 4 and 8
    assert first.returncode == 0, first.stderr
    truncate(tmp_path / "w" / DATA.format(8))
    # The run is COMPLETED (final): it is continued with more steps.
    second = cli_train(tmp_path, "train.num_steps = 12", resume=run_uuid(first))
    assert second.returncode == 0, second.stderr
    assert f"{tmp_path / 'w' / DATA.format(8)} cannot be read" in second.stderr
    assert f"falling back to checkpoint {tmp_path / 'w' / 'ckpt-4'}" in second.stderr
    assert recorded(tmp_path, 2) == ("COMPLETED", [6, 8, 10, 12])  # steps 5..8 trained again
    assert checkpoint_step(tmp_path / "w") == 12

    (tmp_path / "w" / "checkpoint").write_text("garbage")
    third = cli_train(tmp_path, "train.num_steps = 16", resume=run_uuid(second))
    assert third.returncode == 0, third.stderr
    assert f"checkpoint state file {tmp_path / 'w' / 'checkpoint'} is unreadable" in third.stderr
    assert recorded(tmp_path, 3) == ("COMPLETED", [14, 16])  # from step 12, not from 0


@pytest.mark.slow
def test_cli_only_checkpoint_truncated_fails_naming_the_file(tmp_path: Path) -> None:
    first = cli_train(tmp_path, "train.num_steps = 4")
    assert first.returncode == 0, first.stderr
    truncate(tmp_path / "w" / DATA.format(4))
    second = cli_train(tmp_path, "train.num_steps = 8", resume=run_uuid(first))
    assert second.returncode == 1
    assert "CheckpointReadError: no readable checkpoint in" in second.stderr
    assert f"{tmp_path / 'w' / DATA.format(4)} cannot be read" in second.stderr
    assert recorded(tmp_path, 2) == ("FAILED", [])
    assert checkpoint_step(tmp_path / "w") == 4  # nothing overwritten
