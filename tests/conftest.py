"""Test-wide setup.

TensorFlow must see two logical CPU devices before its runtime initialises, so that
MirroredStrategy can be exercised without GPUs (docs/STACK_FACTS.md §6). This runs at collection
time, before any test module imports TensorFlow work.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

# Before any test module imports sacred: its pkg_resources stand-in (docs/STACK_FACTS.md §5).
import capreolus_opt.tracking  # noqa: F401

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
