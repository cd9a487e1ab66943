"""Searches that leave no mess: a typo in ``--space``/``--metric`` is refused before a study
exists, a trial whose worker was SIGKILLed is failed and resumed, ``--status`` never creates a
storage."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pytest

from capreolus_opt import config as gin_config
from capreolus_opt import load_runs
from capreolus_opt.search import worker
from capreolus_opt.search.check import check_search
from capreolus_opt.search.space import parse_spaces
from capreolus_opt.search.storage import open_storage
from tests.search.search_helpers import cli_env, scratch_configs, study_trials


def _check(config: str, *spaces: str, metric: str = "eval/ndcg@10") -> None:
    spec = SimpleNamespace(config=[config], gin_param=[], metric=metric)
    check_search(spec, parse_spaces(list(spaces)), gin_config, metric=True)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("AdamMultilr.learnig_rate=float(1e-4, 1e-2, log)", "learnig_rate"),
        ("LRR=float(1e-4, 1e-2, log)", "the config never uses the macro %LRR"),
        ("train.num_steps=[8, 'many']", "has type str; expected int"),
        ("Nowhere.param=[1, 2]", "Nowhere"),
    ],
)
def test_a_misspelt_space_is_refused_naming_it(tmp_path, space, message):
    config = scratch_configs(tmp_path)
    with pytest.raises(ValueError, match=r"^--space ") as info:
        _check(config, space)
    assert message in str(info.value)


def test_an_unknown_metric_is_refused_listing_what_the_task_logs(tmp_path):
    config = scratch_configs(tmp_path)
    with pytest.raises(ValueError, match=r"--metric 'eval/ndgc@10': the configured task logs "
                       r"eval/mrr@10, eval/ndcg@10"):  # fmt: skip
        _check(config, "LR=float(1e-4, 1e-2, log)", metric="eval/ndgc@10")
    _check(config, "LR=float(1e-4, 1e-2, log)", "train.num_steps=[8, 16]")  # all good


def test_a_dead_workers_trial_is_failed_and_enqueued_to_resume(tmp_path):
    storage = open_storage(f"journal://{tmp_path}/s.log")
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    dead = study.ask({"LR": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    dead.set_user_attr("run_uuid", "a" * 32)
    dead.report(0.3, 8)
    dead.set_user_attr("heartbeat", 1000.0)
    alive = study.ask()
    alive.set_user_attr("heartbeat", 1000.0 + worker.STALE_AFTER_S)
    assert worker.fail_dead_trials(study, now=1001.0 + worker.STALE_AFTER_S) == [dead.number]
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "WAITING"]
    assert trials[0].user_attrs["stopped_reason"] == "died"
    copy = trials[2]
    assert copy.params == {} and copy.system_attrs["fixed_params"] == dead.params
    assert copy.user_attrs["resume_run"] == "a" * 32 and copy.user_attrs["resumes_trial"] == 0
    assert copy.user_attrs["earlier_values"] == [[8, 0.3]]
    assert not worker._counted(trials[0])  # the study still needs its trial


def test_the_heartbeat_thread_beats_until_the_trial_ends(tmp_path):
    study = optuna.create_study(storage=open_storage(f"journal://{tmp_path}/h.log"))
    trial = study.ask()
    with worker.TrialHeartbeat(trial, interval=0.01):
        deadline = time.monotonic() + 30
        while "heartbeat" not in study.trials[0].user_attrs and time.monotonic() < deadline:
            time.sleep(0.01)
    first = study.trials[0].user_attrs["heartbeat"]
    assert first > 0
    study.tell(trial, 1.0)  # the thread is stopped: telling is safe


def tune(*args: str, cwd, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capreolus_opt.cli", "tune", *args],
        cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.slow
def test_typos_never_create_a_study_and_status_never_creates_a_storage(tmp_path):
    config = scratch_configs(tmp_path)
    common = ["--study", "s", "--storage", "journal://s.log"]
    typo = tune(config, *common, "--space", "AdamMultilr.learnig_rate=float(1e-4, 1e-2)",
                cwd=tmp_path)  # fmt: skip
    assert typo.returncode == 2 and "--space 'AdamMultilr.learnig_rate=" in typo.stderr
    metric = tune(config, *common, "--space", "LR=float(1e-4, 1e-2)", "--metric",
                  "eval/ndgc@10", cwd=tmp_path)  # fmt: skip
    assert metric.returncode == 2 and "--metric 'eval/ndgc@10'" in metric.stderr
    status = tune("--status", *common, cwd=tmp_path)
    assert status.returncode == 2 and "no such file s.log" in status.stderr
    assert "Traceback" not in typo.stderr + metric.stderr + status.stderr
    assert not (tmp_path / "s.log").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_sigkilled_worker_leaves_no_running_trial_for_ever(tmp_path):
    config = scratch_configs(tmp_path, "train.num_steps = 400\n")
    storage = f"journal://{tmp_path}/study.log"
    argv = [config, "--space", "LR=[3e-3]", "--study", "k", "--storage", storage,
            "--n-trials", "1", "--sampler", "grid", "--workdir_root", "wd"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "capreolus_opt.cli", "tune", *argv], cwd=tmp_path, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    while not list((tmp_path / "wd").glob("*/checkpoint")) and time.monotonic() < deadline:
        assert proc.poll() is None
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    [killed] = study_trials("k", storage)
    assert killed.state.name == "RUNNING"
    # Age the trial's heartbeat instead of waiting STALE_AFTER_S in the test.
    study = optuna.load_study(study_name="k", storage=open_storage(storage))
    study._storage.set_trial_user_attr(killed._trial_id, "heartbeat", time.time() - 3600)

    again = tune(*argv, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert "its worker died" in again.stderr
    trials = study_trials("k", storage)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0].user_attrs["stopped_reason"] == "died"
    runs = {run.run_uuid: run for run in load_runs(str(tmp_path / "runs"))}
    new = runs[trials[1].user_attrs["run_uuid"]]
    assert new.status == "COMPLETED" and new.resumed_from == killed.user_attrs["run_uuid"]
    status = tune("--status", "--study", "k", "--storage", storage, "--observer", "file://runs",
                  cwd=tmp_path)  # fmt: skip
    assert "died" in status.stdout and "COMPLETED" in status.stdout


def test_two_workers_failing_the_same_dead_trial_enqueue_one_copy(tmp_path):
    storage = open_storage(f"journal://{tmp_path}/s.log")
    study = optuna.create_study(study_name="s", storage=storage)
    dead = study.ask()
    dead.set_user_attr("heartbeat", 1000.0)
    other = optuna.load_study(study_name="s", storage=open_storage(f"journal://{tmp_path}/s.log"))
    stale = study.get_trials(deepcopy=False)
    assert worker.fail_dead_trials(study, now=5000.0) == [0]
    # A second worker that read the trial as RUNNING just before: nothing more happens.
    other.get_trials = lambda deepcopy=True, states=None: stale
    assert worker.fail_dead_trials(other, now=5000.0) == []
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "WAITING"]
