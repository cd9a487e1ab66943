"""Multi-process tests: two local MultiWorkerMirroredStrategy workers, and SIGTERM then resume."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf

from tests.training.regression_task import RegressionTask
from tests.training.test_train_loop import assert_same_checkpoints, run

SCRIPT = str(Path(__file__).with_name("run_regression_training.py"))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _launch(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})})
    return subprocess.Popen(
        [sys.executable, SCRIPT, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _launch_two_workers(tmp_path: Path, *args: str) -> list[subprocess.Popen]:
    """Two MultiWorkerMirroredStrategy workers on local ports; worker i writes workeri.json."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        out = tmp_path / f"worker{index}.json"
        argv = ["--kind", "multi_worker", "--workdir", str(tmp_path / "mw"), "--out", str(out)]
        procs.append(_launch([*argv, *args], {"TF_CONFIG": json.dumps(tf_config)}))
    return procs


def _wait_for(marker: Path, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 120
    while not marker.exists():
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.05)


@pytest.mark.slow
def test_two_workers_equal_one_worker_on_same_global_batches(tmp_path: Path) -> None:
    procs = _launch_two_workers(tmp_path, "--num-steps", "6")
    for proc in procs:
        _, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr[-3000:]
    chief = json.loads((tmp_path / "worker0.json").read_text())
    other = json.loads((tmp_path / "worker1.json").read_text())
    assert chief["strategy_summary"]["num_workers"] == 2
    assert chief["strategy_summary"]["num_replicas"] == 2
    assert chief["logged_steps"] == [2, 4, 6] and other["logged_steps"] == []  # chief logs only
    assert sorted(p.name for p in (tmp_path / "mw").iterdir() if p.name.startswith(".")) == []

    single = run(tmp_path / "single", num_steps=6)
    assert_same_checkpoints(single.checkpoint_path, chief["checkpoint_path"], atol=1e-5)
    for result in (chief, other):  # eval outputs gathered from both workers, uneven batches
        assert result["eval_metrics"]["count"] == 37.0
        assert result["eval_metrics"]["mse"] == pytest.approx(single.eval_metrics["mse"], rel=1e-5)


@pytest.mark.slow
def test_sigterm_during_training_then_resume(tmp_path: Path) -> None:
    workdir, marker = tmp_path / "run", tmp_path / "started"
    proc = _launch(["--workdir", str(workdir), "--num-steps", "1000000", "--marker", str(marker)])
    _wait_for(marker, [proc])
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "KeyboardInterrupt: signal 15 at step" in stderr
    latest = tf.train.latest_checkpoint(str(workdir))
    stopped_at = int(latest.rsplit("-", 1)[1])
    assert stopped_at >= 2

    target = stopped_at + 4
    resumed = run(workdir, num_steps=target, task=RegressionTask())
    full = run(tmp_path / "full", num_steps=target)
    assert resumed.final_step == target
    assert_same_checkpoints(full.checkpoint_path, resumed.checkpoint_path, atol=1e-6)


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_every_worker_at_one_checkpoint(tmp_path: Path) -> None:
    """A preempted node gets the signal, its peers do not: all must stop after the same step and
    write one checkpoint together (a save is collective), not hang in the next all-reduce."""
    marker = tmp_path / "started"  # written by the chief once metrics flow
    procs = _launch_two_workers(tmp_path, "--num-steps", "1000000", "--marker", str(marker))
    _wait_for(marker, procs)
    procs[1].send_signal(signal.SIGTERM)  # the non-chief: the chief writes the checkpoint
    stderrs = [proc.communicate(timeout=120)[1] for proc in procs]
    for proc, stderr in zip(procs, stderrs, strict=True):
        assert proc.returncode != 0, stderr[-3000:]
    signalled = re.search(r"KeyboardInterrupt: signal 15 at step (\d+); checkpointed", stderrs[1])
    peer = re.search(r"KeyboardInterrupt: a signal to another worker at step (\d+)", stderrs[0])
    assert signalled and peer, stderrs[0][-2000:] + stderrs[1][-2000:]
    stopped_at = int(signalled.group(1))
    assert int(peer.group(1)) == stopped_at >= 2
    workdir = tmp_path / "mw"
    assert tf.train.latest_checkpoint(str(workdir)).endswith(f"-{stopped_at}")
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".worker_tmp")] == []

    target = stopped_at + 4
    resumed = run(workdir, num_steps=target)  # one worker continues the two workers' run
    full = run(tmp_path / "full", num_steps=target)
    assert resumed.final_step == target
    assert_same_checkpoints(full.checkpoint_path, resumed.checkpoint_path, atol=1e-5)
