"""End-to-end ``capreolus-opt train`` on the smoke config, through the real command line.

Weights are compared by reading the checkpoints the runs leave in their workdirs.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli_helpers import (
    ROOT,
    SMOKE,
    assert_same_weights,
    checkpoint_step,
    model_weights,
    run_cli,
)

pytestmark = pytest.mark.slow  # every test trains through the real command line
MIRRORED = str(ROOT / "gin_configs" / "strategy" / "mirrored.gin")


def _train(tmp_path, name, *extra, files=(SMOKE,)):
    workdir = tmp_path / name
    proc = run_cli(
        "train",
        *files,
        "--workdir",
        str(workdir),
        "--observer",
        f"file://{tmp_path / 'runs'}",
        *extra,
    )
    return proc, workdir


def test_resume_in_the_same_workdir_ends_with_the_uninterrupted_weights(tmp_path):
    first, resumed = _train(tmp_path, "resumed", "--gin_param", "train.num_steps = 4")
    assert first.returncode == 0, first.stderr
    assert checkpoint_step(resumed) == 4
    # A plain re-run would continue run 1's checkpoint under other settings: refused.
    rerun, _ = _train(tmp_path, "resumed")
    assert rerun.returncode == 2 and "belongs to run" in rerun.stderr, rerun.stderr
    owner = rerun.stderr.split("belongs to run ")[1][:32]
    second = run_cli(
        "train", "--resume", owner, "--observer", f"file://{tmp_path / 'runs'}",
        "--gin_param", "train.num_steps = 8",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr  # continues from step 4 to 8
    straight_proc, straight = _train(tmp_path, "straight")
    assert straight_proc.returncode == 0, straight_proc.stderr
    assert checkpoint_step(resumed) == checkpoint_step(straight) == 8
    assert_same_weights(model_weights(resumed), model_weights(straight), rtol=1e-6, atol=1e-7)


def test_mirrored_on_two_cpu_devices_equals_the_default_strategy(tmp_path):
    default_proc, default = _train(tmp_path, "default", "--gin_param", "train.num_steps = 4")
    assert default_proc.returncode == 0, default_proc.stderr
    mirrored_proc, mirrored = _train(
        tmp_path,
        "mirrored",
        "--gin_param",
        "train.num_steps = 4",
        "--gin_param",
        "make_strategy.num_cpu_devices = 2",
        files=(SMOKE, MIRRORED),
    )
    assert mirrored_proc.returncode == 0, mirrored_proc.stderr
    # Two replicas sum gradients in another order (float32); Adam's m/sqrt(v) amplifies that for
    # near-zero gradients, so the bound is absolute: 1e-5 is 1% of one step at the smallest lr.
    assert_same_weights(model_weights(default), model_weights(mirrored), rtol=1e-5, atol=1e-5)


def test_misspelt_binding_exits_nonzero_and_records_no_run(tmp_path):
    proc, workdir = _train(tmp_path, "typo", "--gin_param", "AdamMultilr.learnig_rate = 1e-3")
    assert proc.returncode != 0
    assert "learnig_rate" in proc.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not [p for p in runs.iterdir() if p.name.isdigit()]
    assert not workdir.exists()


def test_malformed_training_file_is_named_with_its_line(tmp_path):
    train_tsv = tmp_path / "train.tsv"
    train_tsv.write_text("cheap flights\tflights to paris\tweather report\nbroken line\n")
    eval_tsv = tmp_path / "eval.tsv"
    eval_tsv.write_text("cheap flights\tflights to paris\t1\ncheap flights\tweather report\t0\n")
    proc, _ = _train(
        tmp_path,
        "tsv",
        "--gin_param",
        "RerankingTask.data = @TsvRankingData()",
        "--gin_param",
        f"TsvRankingData.train_path = '{train_tsv}'",
        "--gin_param",
        f"TsvRankingData.eval_path = '{eval_tsv}'",
    )
    assert proc.returncode != 0
    assert f"{train_tsv}:2" in proc.stderr


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr 1e38: the first update drives the weights to ~1e38, so the second loss overflows.
    proc, workdir = _train(
        tmp_path,
        "nan",
        "--gin_param",
        "AdamMultilr.learning_rate = 1e38",
        "--gin_param",
        "AdamMultilr.pattern_lrs = None",
        "--gin_param",
        "train.metrics_every = 1",
        "--gin_param",
        "train.checkpoint_every = 1",
    )
    assert proc.returncode != 0
    assert "non-finite" in proc.stderr and "step 2" in proc.stderr
    assert checkpoint_step(workdir) == 1
    assert all(np.isfinite(w).all() for w in model_weights(workdir).values())
