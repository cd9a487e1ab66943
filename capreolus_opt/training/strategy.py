"""Distribution strategy factory: ``make_strategy`` and a JSON-able ``strategy_summary``.

Kinds (``make_strategy(kind=...)``):

- ``auto``: a TPU when a TPU cluster resolver finds one (then connect and initialise the TPU
  system), else ``MirroredStrategy`` over several GPUs, else ``OneDeviceStrategy`` on the only
  GPU, else the default strategy.
- ``default``: ``tf.distribute.get_strategy()`` (no distribution).
- ``one_device``: ``OneDeviceStrategy`` on the first GPU, else the first CPU.
- ``mirrored``: ``MirroredStrategy`` over all GPUs, else over the logical CPU devices; needs at
  least two devices (it is an error, not a fallback, when the machine has one).
- ``gpu``: ``MirroredStrategy`` over every local GPU, one or more (``strategy/gpu.gin``); an
  error naming the devices found when there is no GPU (never a silent CPU run).
- ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG`` (without
  it, a single local worker). Create it before any other TensorFlow work in the process: TF
  configures collective ops when it initialises its runtime.
- ``tpu``: ``TPUStrategy`` on the TPU named by ``tpu`` (``""`` = local / ``TPU_NAME``).

``num_cpu_devices=N`` splits the first physical CPU into N logical devices so that mirrored
training can be exercised without GPUs. TensorFlow only allows this before its runtime initialises.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

KINDS = ("auto", "default", "one_device", "mirrored", "gpu", "multi_worker", "tpu")

# One strategy per (class, devices) per process: two MirroredStrategy instances over the same
# devices draw collective instance keys from separate counters, and their gathers/all-reduces
# then collide ("Collective instance N expected type 0 ... but got type 2"), seen with TF 2.21
# when a process trains twice (tests, notebooks, sweeps).
_CACHE: dict[tuple[str, tuple[str, ...]], tf.distribute.Strategy] = {}


def _cached(cls: type, devices: list[str] | None = None) -> tf.distribute.Strategy:
    key = (cls.__name__, tuple(devices or ()))
    if key not in _CACHE:
        _CACHE[key] = (
            cls(devices[0])
            if cls is tf.distribute.OneDeviceStrategy
            else (cls(devices) if devices is not None else cls())
        )
    return _CACHE[key]


def configure_cpu_devices(num_cpu_devices: int) -> None:
    """Split the first physical CPU into ``num_cpu_devices`` logical devices.

    Accepted without change when the existing configuration already has that many logical CPUs
    (e.g. a test ``conftest.py`` configured them). ``1`` leaves an existing split untouched.

    Raises:
        ValueError: ``num_cpu_devices`` is not a positive int.
        RuntimeError: TensorFlow's runtime is already initialised with another configuration.
    """
    if isinstance(num_cpu_devices, bool) or not isinstance(num_cpu_devices, int):
        raise TypeError(f"num_cpu_devices must be an int >= 1. Received: {num_cpu_devices!r}")
    if num_cpu_devices < 1:
        raise ValueError(f"num_cpu_devices must be >= 1. Received: {num_cpu_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    existing = tf.config.get_logical_device_configuration(cpu)
    current = len(existing) if existing else 1
    if current == num_cpu_devices or num_cpu_devices == 1:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_cpu_devices)]
        )
    except RuntimeError as err:
        raise RuntimeError(
            f"num_cpu_devices={num_cpu_devices} cannot be applied: TensorFlow's runtime is already "
            f"initialised with {current} logical CPU device(s) "
            f"({[d.name for d in tf.config.list_logical_devices('CPU')]}). Call make_strategy "
            "before any other TensorFlow work in the process, or set num_cpu_devices="
            f"{current}. ({err})"
        ) from err


def make_strategy(
    kind: str = "auto", tpu: str = "", num_cpu_devices: int = 1
) -> tf.distribute.Strategy:
    """Create the distribution strategy named by ``kind`` (see the module docstring).

    Raises:
        ValueError: unknown ``kind``, malformed ``TF_CONFIG``, or the machine cannot provide the
            requested strategy (the message names the devices found).
        RuntimeError: ``num_cpu_devices`` cannot be applied any more (see
            ``configure_cpu_devices``).
    """
    if kind not in KINDS:
        raise ValueError(f"strategy kind must be one of {list(KINDS)}. Received: {kind!r}")
    if kind == "multi_worker":
        # Must come before anything that initialises the runtime (listing logical devices does).
        _check_tf_config()
        configure_cpu_devices(num_cpu_devices)
        return _cached(tf.distribute.MultiWorkerMirroredStrategy)
    configure_cpu_devices(num_cpu_devices)
    if kind == "tpu":
        return _tpu_strategy(tpu)
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if kind == "auto":
        if tpu or _tpu_hint():
            return _tpu_strategy(tpu)
        if len(gpus) > 1:
            return _cached(tf.distribute.MirroredStrategy, gpus)
        if len(gpus) == 1:
            return _cached(tf.distribute.OneDeviceStrategy, gpus[:1])
        if num_cpu_devices > 1:
            return _cached(tf.distribute.MirroredStrategy, cpus)
        return tf.distribute.get_strategy()
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "one_device":
        return _cached(tf.distribute.OneDeviceStrategy, (gpus or cpus)[:1])
    if kind == "gpu":
        if not gpus:
            raise ValueError(
                "strategy kind 'gpu' found no GPU; logical devices: "
                f"{[d.name for d in tf.config.list_logical_devices()]} (is the `gpu` extra, "
                "tensorflow[and-cuda], installed and does nvidia-smi list a card?)"
            )
        return _cached(tf.distribute.MirroredStrategy, gpus)
    devices = gpus or cpus
    if len(devices) < 2:
        raise ValueError(
            "strategy kind 'mirrored' needs at least two devices; found GPUs "
            f"{gpus} and logical CPUs {cpus}. On a CPU-only machine set num_cpu_devices=N >= 2."
        )
    return _cached(tf.distribute.MirroredStrategy, devices)


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}). Received: {raw!r}") from err
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError(
            f"TF_CONFIG must be a JSON object with 'cluster' and 'task' keys. Received: {raw!r}"
        )


def _tpu_hint() -> bool:
    """Cheap signs of a TPU, so ``auto`` never waits on a cloud metadata lookup on other hosts."""
    return bool(os.environ.get("TPU_NAME")) or os.path.exists("/dev/accel0")


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        found = [d.name for d in tf.config.list_logical_devices()]
        raise ValueError(
            f"strategy kind 'tpu' (tpu={tpu!r}) found no TPU: {err}. Devices found: {found}"
        ) from err
    return tf.distribute.TPUStrategy(resolver)


def strategy_kind(strategy: tf.distribute.Strategy) -> str:
    """The ``make_strategy`` kind that corresponds to ``strategy``'s class."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return "one_device"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "default"


def _devices(strategy: tf.distribute.Strategy) -> list[str]:
    if strategy_kind(strategy) == "default":
        # The default strategy has no device list; ops go to TF's default device.
        return [
            (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name
        ]
    return [str(d) for d in strategy.extended.worker_devices]


def strategy_summary(strategy: tf.distribute.Strategy) -> dict[str, Any]:
    """JSON-able description: kind, class, num_replicas, devices (this worker's), num_workers,
    and for multi-worker runs this worker's task type and id."""
    resolver = getattr(strategy, "cluster_resolver", None)
    summary: dict[str, Any] = {
        "kind": strategy_kind(strategy),
        "class": type(strategy).__name__,
        "num_replicas": int(strategy.num_replicas_in_sync),
        "devices": _devices(strategy),
        "num_workers": 1,
    }
    if resolver is not None and resolver.cluster_spec().as_dict():
        spec = resolver.cluster_spec().as_dict()
        summary["num_workers"] = sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))
        summary["task_type"] = resolver.task_type
        summary["task_id"] = int(resolver.task_id)
    return summary


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that logs and owns the real checkpoint folder (task 'chief', else
    worker 0, else the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    spec = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in spec
