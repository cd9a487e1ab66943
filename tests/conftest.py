"""Test-wide setup.

TensorFlow must see two logical CPU devices before its runtime initialises, so that
MirroredStrategy can be exercised without GPUs (docs/STACK_FACTS.md §6). This runs at collection
time, before any test module imports TensorFlow work.
"""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

# Before any test module imports sacred: its pkg_resources stand-in (docs/STACK_FACTS.md §5).
import capreolus_opt.tracking  # noqa: F401

# Recorded-run fixtures shared by tests/records, tests/analysis and tests/export.
from tests.recorded_runs import mongo_client, observers  # noqa: F401  (pytest fixtures)

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


# --- tiers ----------------------------------------------------------------------------------
# `pytest` alone runs the fast tier (pyproject's addopts deselect `slow`); `pytest -m "slow or not
# slow" -n 2 --dist loadgroup` runs everything. A test that starts a process (a CLI run, a server,
# a browser) belongs to the slow tier: an audit hook fails any unmarked test that does, in
# either tier, so the fast tier stays in-process. Short helpers the library itself runs in-process
# are let through: `git`, `cat /proc/cpuinfo`, `nvidia-smi` and `file -b` (Sacred's repository
# and host info; platform.architecture()), `ldconfig -p` (ctypes' find_library("c"), which
# importing sacred.optional runs) and the C++ compiler, `$CXX` or g++ (the one-pass Adam kernel,
# built once into a cache).
_HOST_INFO_PROGRAMS = {"git", "cat", "nvidia-smi", "ldconfig", "file"}
_UNMARKED_TEST: list[str] = []  # the node id of the unmarked test now running, if any
_SPAWN_EVENTS = {
    "subprocess.Popen", "os.posix_spawn", "os.spawn", "os.system", "os.fork", "os.exec"
}  # fmt: skip


def _refuse_processes_in_fast_tests(event: str, args: tuple) -> None:
    if not _UNMARKED_TEST or event not in _SPAWN_EVENTS:
        return
    if event == "subprocess.Popen":
        program = os.path.basename(str(args[0]))
        if program in _HOST_INFO_PROGRAMS or program == (os.environ.get("CXX") or "g++"):
            return
    raise RuntimeError(
        f"{_UNMARKED_TEST[0]} starts a process ({event} {args[:2]!r}); "
        "mark it @pytest.mark.slow or keep it in-process"
    )


sys.addaudithook(_refuse_processes_in_fast_tests)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("slow") is None:
        _UNMARKED_TEST.append(item.nodeid)
    try:
        return (yield)
    finally:
        _UNMARKED_TEST.clear()
