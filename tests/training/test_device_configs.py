"""The accelerator configs parse, `gpu` without a GPU is an error, and device_check.sh's CPU path
runs (the GPU path needs an NVIDIA machine: benchmarks/device_check.sh there)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from capreolus_opt import config as gin_config
from capreolus_opt.training import make_strategy
from tests.cli_helpers import ROOT

QUICKSTART = str(ROOT / "gin_configs" / "quickstart.gin")
STRATEGY = ROOT / "gin_configs" / "strategy"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("gpu.gin", {"kind": "gpu", "mixed_precision": "mixed_bfloat16", "jit_compile": True}),
        ("tpu.gin", {"kind": "tpu", "mixed_precision": "mixed_bfloat16", "jit_compile": False}),
        ("mirrored.gin", {"kind": "mirrored", "mixed_precision": None, "jit_compile": False}),
    ],
)
def test_strategy_configs_parse_with_quickstart(name: str, expected: dict) -> None:
    gin_config.parse_config([QUICKSTART, str(STRATEGY / name)], [])
    found = {
        "kind": gin_config.configured("make_strategy.kind"),
        "mixed_precision": dict(gin_config.flat_hyperparameters())["train.mixed_precision"],
        "jit_compile": dict(gin_config.flat_hyperparameters())["train.jit_compile"],
    }
    assert found == expected


def test_gpu_kind_without_a_gpu_names_the_devices() -> None:
    if tf.config.list_physical_devices("GPU"):
        strategy = make_strategy("gpu")
        assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("GPU"))
        return
    with pytest.raises(ValueError, match=r"strategy kind 'gpu' found no GPU; logical devices: "):
        make_strategy("gpu")


@pytest.mark.slow
def test_device_check_cpu_path_runs_and_summarises() -> None:
    env = {**os.environ, "DEVICE_CHECK_PYTHON": sys.executable, "DEVICE_CHECK_CPU_ONLY": "1"}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "TensorFlow 2." in out  # the devices were printed
    assert "PASS cpu:bf16" in out and "PASS cpu:fp16" in out  # against the float32 run
    summary = out.split("=== summary")[1]
    assert "train on CPU" in summary and "PASS" in summary
    assert "the GPU part\nwas not run" in out and "GPU part" in summary and "SKIP" in summary
