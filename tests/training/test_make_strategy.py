"""make_strategy kinds, strategy_summary, and the errors for what a machine cannot provide.

tests/conftest.py has already split the CPU into two logical devices in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from capreolus_opt.training import make_strategy, strategy_summary


def test_default_and_one_device() -> None:
    default = make_strategy("default")
    assert default is tf.distribute.get_strategy()
    summary = strategy_summary(default)
    assert summary["kind"] == "default" and summary["num_replicas"] == 1
    one = make_strategy("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert strategy_summary(one)["devices"] == ["/job:localhost/replica:0/task:0/device:CPU:0"]


def test_mirrored_over_two_logical_cpus_and_summary_is_json() -> None:
    strategy = make_strategy("mirrored", num_cpu_devices=2)  # matches conftest: accepted
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    summary = json.loads(json.dumps(strategy_summary(strategy)))
    assert summary["kind"] == "mirrored"
    assert summary["class"] == "MirroredStrategy"
    assert summary["num_replicas"] == 2
    assert [d.rsplit(":", 2)[-2:] for d in summary["devices"]] == [["CPU", "0"], ["CPU", "1"]]


def test_auto_without_accelerators_uses_cpus_as_asked() -> None:
    assert strategy_summary(make_strategy("auto"))["kind"] == "default"
    assert strategy_summary(make_strategy("auto", num_cpu_devices=2))["num_replicas"] == 2


def test_bad_kind_and_bad_num_cpu_devices() -> None:
    with pytest.raises(ValueError, match="'mirorred'"):
        make_strategy("mirorred")
    with pytest.raises(ValueError, match="num_cpu_devices must be >= 1. Received: 0"):
        make_strategy("default", num_cpu_devices=0)
    with pytest.raises(TypeError, match="Received: '2'"):
        make_strategy("default", num_cpu_devices="2")


def test_num_cpu_devices_after_runtime_init_names_existing_configuration() -> None:
    with pytest.raises(RuntimeError, match=r"num_cpu_devices=3 .* already initialised with 2"):
        make_strategy("mirrored", num_cpu_devices=3)


def test_tpu_without_tpu_is_an_error_naming_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match=r"found no TPU.*Devices found: \['/device:CPU:0'"):
        make_strategy("tpu")


def test_multi_worker_rejects_malformed_tf_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
    with pytest.raises(ValueError, match="'cluster' and 'task' keys"):
        make_strategy("multi_worker")


def _run(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    code = "from capreolus_opt.training import make_strategy, strategy_summary\n" + script
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.slow
def test_fresh_process_mirrored_on_one_cpu_is_an_error() -> None:
    """Without conftest's split: mirrored on one CPU fails, naming the devices; afterwards the
    runtime is initialised and a split is refused with the existing configuration named."""
    script = textwrap.dedent(
        """
        for kwargs in ({}, {"num_cpu_devices": 3}):
            try:
                make_strategy("mirrored", **kwargs)
            except (ValueError, RuntimeError) as err:
                print("ERROR:", err)
        """
    )
    out = _run(script).stdout
    assert "ERROR: strategy kind 'mirrored' needs at least two devices" in out
    assert "logical CPUs ['/device:CPU:0']" in out
    assert "ERROR: num_cpu_devices=3 cannot be applied" in out
    assert "initialised with 1 logical CPU device(s)" in out


@pytest.mark.slow
def test_fresh_process_num_cpu_devices_splits_the_cpu() -> None:
    out = _run(
        'print("REPLICAS:", make_strategy("mirrored", num_cpu_devices=3).num_replicas_in_sync)'
    )
    assert "REPLICAS: 3" in out.stdout
