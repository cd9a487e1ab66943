"""End-to-end on the real training (gin_configs/smoke.gin): ``capreolus-opt train`` in a
subprocess (file + SQLite), and the same experiment through Sacred's own command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tracking.tracking_helpers import file_metrics, file_runs, sql_metrics

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "gin_configs" / "smoke.gin")
# smoke.gin: 8 steps, metrics every 2 steps, eval every 4 (tests below shorten it further).
STEPS, METRICS_EVERY, EVAL_EVERY = 4, 2, 4
BINDINGS = [f"train.num_steps = {STEPS}", "train.checkpoint_every = 2"]


def _expected_counts(names: list[str]) -> dict[str, int]:
    return {n: STEPS // (EVAL_EVERY if n.startswith("eval/") else METRICS_EVERY) for n in names}


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_capreolus_opt_train_on_smoke_config(tmp_path):
    db = f"sqlite:///{tmp_path}/r.db"
    argv = [sys.executable, "-m", "capreolus_opt.cli", "train", SMOKE, "--seed", "3"]
    for binding in BINDINGS:
        argv += ["--gin_param", binding]
    proc = _run([*argv, "--observer", "file://runs", "--observer", db], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = file_runs(tmp_path / "runs")
    run = json.loads((run_dir / "run.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    info = json.loads((run_dir / "info.json").read_text())
    assert run["status"] == "COMPLETED"
    assert set(run["result"]) == {"mrr@10", "ndcg@10"}
    assert all(isinstance(v, float) for v in run["result"].values())
    hparams = dict(map(tuple, config["hparams"]))
    assert hparams["train.num_steps"] == STEPS and hparams["train.seed"] == 3
    assert config["seed"] == 3
    groups = {row["group"] for row in info["group_table"]}
    assert groups >= {"default"}
    assert "train.num_steps = 4" in info["operative_gin_config"]
    assert sorted(run["artifacts"]) == ["checkpoint.txt", "group_table.csv", "operative_config.gin"]
    metrics = file_metrics(run_dir)
    expected_names = {"train/loss", "eval/mrr@10", "eval/ndcg@10"} | {
        f"group/{g}/{k}" for g in groups for k in ("lr", "grad_norm", "update_norm", "param_norm")
    }
    assert set(metrics) == expected_names
    assert {n: len(p) for n, p in metrics.items()} == _expected_counts(sorted(expected_names))
    assert sql_metrics(db, info["run_uuid"]) == metrics


@pytest.mark.slow
def test_sacred_command_line_produces_the_same_record(tmp_path):
    script = str(ROOT / "experiments" / "train.py")
    bindings = json.dumps(BINDINGS)
    argv = [sys.executable, script, "with", "fast", f"gin_bindings={bindings}", "-F", "runs"]
    proc = _run(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = file_runs(tmp_path / "runs")
    run = json.loads((run_dir / "run.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert run["status"] == "COMPLETED"
    assert config["gin_files"] == [SMOKE] and config["gin_bindings"] == BINDINGS
    assert ["train.num_steps", STEPS] in config["hparams"]
    metrics = file_metrics(run_dir)
    assert {n: len(p) for n, p in metrics.items()} == _expected_counts(sorted(metrics))
