"""``capreolus-opt tune`` end to end on the real CLI, real Optuna storages and real training:
trial <-> run links, pruning recorded as PRUNED (not FAILED), a study that resumes, an interrupted
trial that continues its run, two workers sharing a PostgreSQL study."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from capreolus_opt import load_runs
from tests.search.search_helpers import (
    POSTGRES_URL,
    cli_env,
    scratch_configs,
    scratch_postgres,
    study_trials,
)


def tune(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", "tune", *args],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.slow
def test_bad_input_exits_2_before_anything_starts(tmp_path):
    config = scratch_configs(tmp_path)
    common = ["--study", "s", "--space", "LR=float(1e-4, 1e-2, log)"]
    sqlite = tune(config, *common, "--storage", "sqlite:///s.db", "--workers", "2", cwd=tmp_path)
    assert sqlite.returncode == 2 and "SQLite cannot serve parallel workers" in sqlite.stderr
    assert not (tmp_path / "s.db").exists()
    bad = tune(config, *common[:2], "--space", "LR=float(1, 0)", "--storage", "journal://s.log",
               cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "LOW must be below HIGH" in bad.stderr
    metric = tune(config, *common, "--storage", "journal://s.log", "--metric", "train/loss",
                  cwd=tmp_path)  # fmt: skip
    assert metric.returncode == 2 and "eval/ metric" in metric.stderr
    grid = tune(config, *common, "--storage", "journal://s.log", "--sampler", "grid", cwd=tmp_path)
    assert grid.returncode == 2 and "needs a list of values" in grid.stderr
    down = tune(config, *common, "--storage", "postgresql://me:hunter2@127.0.0.1:1/optuna",
                cwd=tmp_path)  # fmt: skip
    assert down.returncode == 2 and "cannot open study 's'" in down.stderr
    assert "hunter2" not in down.stderr and "hunter2" not in down.stdout
    assert not (tmp_path / "s.log").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_trials_link_runs_the_pruner_stops_a_bad_one_and_the_study_resumes(tmp_path):
    config = scratch_configs(tmp_path)
    storage = f"journal://{tmp_path}/study.log"
    # Fixed points, in order (search_helpers: the second scores below the first at step 8).
    study = optuna.create_study(study_name="lr", storage=_journal(storage), direction="maximize")
    study.enqueue_trial({"LR": 1e-7})
    study.enqueue_trial({"LR": 1e-2})
    argv = [config, "--space", "LR=float(1e-8, 1e-1, log)", "--metric", "eval/ndcg@10",
            "--study", "lr", "--storage", storage, "--n-trials", "2", "--sampler", "random",
            "--pruner", "median", "--pruner-startup-trials", "1"]  # fmt: skip
    proc = tune(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]

    trials = study_trials("lr", storage)
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
    runs = {run.run_uuid: run for run in load_runs(str(tmp_path / "runs"))}
    assert len(runs) == 2
    for trial in trials:
        run = runs[trial.user_attrs["run_uuid"]]  # the trial points at its run ...
        info = json.loads((Path(run.sources[0]) / run.sacred_ids[run.sources[0]] / "info.json")
                          .read_text())  # fmt: skip
        assert info["tune"] == {"study": "lr", "trial": trial.number}  # ... and back
        # The macro reached every group: the group lrs are what the trial suggested.
        encoder_lrs = [row["lr"] for row in run.group_table if row["group"] == "encoder"]
        assert encoder_lrs and all(lr == pytest.approx(trial.params["LR"]) for lr in encoder_lrs)
        assert run.hparams["AdamMultilr.learning_rate"] == trial.params["LR"]
        # Trials share one process: the second model's variables keep their paths, so groups.
        assert {row["group"] for row in run.group_table} == {"embedding", "encoder", "default"}
    done, pruned = (runs[t.user_attrs["run_uuid"]] for t in trials)
    assert done.status == "COMPLETED" and trials[0].value == done.result["ndcg@10"]
    assert pruned.status == "INTERRUPTED" and pruned.stopped_reason == "pruned"
    assert pruned.metrics["eval/ndcg@10"].steps == [8]  # stopped at its first evaluation
    assert trials[1].intermediate_values == {8: pruned.metrics["eval/ndcg@10"].values[0]}

    table = subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", "compare", "runs", "--metric",
         "eval/ndcg@10"], cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert "PRUNED" in table and "COMPLETED" in table and "FAILED" not in table

    status = tune("--status", "--study", "lr", "--storage", storage, "--observer", "file://runs",
                  cwd=tmp_path)  # fmt: skip
    assert status.returncode == 0, status.stderr
    for trial in trials:
        assert trial.user_attrs["run_uuid"][:8] in status.stdout
    assert "PRUNED" in status.stdout and "COMPLETED" in status.stdout

    again = tune(*argv, cwd=tmp_path)  # the study already holds its 2 trials: nothing to do
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(study_trials("lr", storage)) == 2
    assert len(load_runs(str(tmp_path / "runs"))) == 2


def _journal(url: str):
    from capreolus_opt.search.storage import open_storage

    return open_storage(url)


@pytest.mark.slow
def test_an_interrupted_trial_resumes_its_run_when_the_study_continues(tmp_path):
    config = scratch_configs(tmp_path, "train.num_steps = 400\n")
    storage = f"journal://{tmp_path}/study.log"
    argv = [config, "--space", "LR=[3e-3]", "--study", "i", "--storage", storage,
            "--n-trials", "1", "--sampler", "grid", "--workdir_root", "wd"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "capreolus_opt.cli", "tune", *argv], cwd=tmp_path, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not list((tmp_path / "wd").glob("*/checkpoint")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-3000:]
    first = study_trials("i", storage)
    assert [t.state.name for t in first] == ["FAIL", "WAITING"]
    assert first[0].user_attrs["stopped_reason"] == "interrupted"
    assert first[1].user_attrs["resume_run"] == first[0].user_attrs["run_uuid"]

    proc = tune(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    trials = study_trials("i", storage)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    runs = {run.run_uuid: run for run in load_runs(str(tmp_path / "runs"))}
    old, new = (runs[t.user_attrs["run_uuid"]] for t in trials)
    assert old.status == "INTERRUPTED" and new.status == "COMPLETED"
    assert new.resumed_from == old.run_uuid
    steps = old.metrics["train/loss"].steps + new.metrics["train/loss"].steps
    assert steps == list(range(4, 401, 4))  # the two records together: every point, once


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="CAPREOLUS_TEST_POSTGRES_URL is not set (CI sets it)")
def test_two_workers_share_a_postgresql_study(tmp_path):
    config = scratch_configs(tmp_path)
    with scratch_postgres() as url:
        argv = [config, "--space", "LR=float(1e-4, 1e-2, log)", "--study", "pg",
                "--storage", url, "--n-trials", "3", "--sampler", "random",
                "--observer", url]  # fmt: skip
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "capreolus_opt.cli", "tune", *argv, "--seed", str(seed)],
                cwd=tmp_path,
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            for seed in (1, 2)
        ]
        outputs = [w.communicate(timeout=1200)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-2000:] for o in outputs)
        trials = study_trials("pg", url)
        counted = [t for t in trials if t.user_attrs.get("stopped_reason") != "surplus"]
        assert len(counted) == 3 and all(t.state.name == "COMPLETE" for t in counted)
        assert sorted(t.number for t in counted) == sorted({t.number for t in counted})
        runs = {run.run_uuid: run for run in load_runs(url)}
        linked = [t.user_attrs["run_uuid"] for t in counted]
        assert len(set(linked)) == 3  # no trial ran twice
        assert all(runs[u].status == "COMPLETED" for u in linked)
        assert len(runs) == 3
