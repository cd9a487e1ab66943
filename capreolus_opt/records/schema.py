"""The run record's shape: what a tracked run stores in every observer, named once.

Every writer (``tracking/``: the Sacred experiment, the run call, the observers) and every reader
(``file.py``, ``sql.py``, ``mongo.py``, and ``train --resume`` through
:func:`~capreolus_opt.records.load.find_recorded_run`) spells a stored key through this module;
statuses come from :mod:`.status`. A stored run has, in each observer's own layout:

- Sacred's top-level fields (:class:`Entry`): status, times, heartbeat, ``result``, artifact
  names, ``fail_trace``; FileStorage keeps them in :data:`RUN_FILE`, SQL in the ``run`` row
  (``storage/sql.py``), MongoDB in the ``runs`` document.
- ``config`` (:class:`ConfigKey`, read as :class:`RecordedConfig`): ``hparams`` is a list of
  ``[name, value]`` pairs, not a dict, because Sacred and MongoDB reject keys containing ".".
- ``info`` (:class:`InfoKey`, read as :class:`RecordedInfo`): ``run_uuid`` (ours: Sacred's ids
  differ across observers) identifies a run everywhere.
- artifacts (:class:`ArtifactName`) and metric series (:class:`MetricName`); ``result`` is the
  final evaluation metrics as a dict of floats (:func:`result_from_record`).

The module names the stored formats and defines none of its own: they are Sacred 0.8.7's
observers' plus our SQL tables (``storage/sql.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from capreolus_opt.storage.paths import check_group_name, check_run_uuid


class RecordError(ValueError):
    """A stored run record is unreadable or lacks what the run-record contract requires."""


class Entry:
    """Sacred's top-level fields of a stored run (``run.json``, the SQL ``run`` row, the Mongo
    ``runs`` document)."""

    STATUS = "status"
    START_TIME = "start_time"
    STOP_TIME = "stop_time"
    HEARTBEAT = "heartbeat"
    RESULT = "result"
    ARTIFACTS = "artifacts"
    FAIL_TRACE = "fail_trace"
    CONFIG = "config"
    INFO = "info"


#: FileStorage's files in a run folder (Sacred's names).
RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
INFO_FILE = "info.json"
METRICS_FILE = "metrics.json"
OUTPUT_FILE = "cout.txt"
#: MongoDB's collections (Sacred's names).
MONGO_RUNS = "runs"
MONGO_METRICS = "metrics"


class ConfigKey:
    """Keys of a run's ``config``."""

    GIN_FILES = "gin_files"  # absolute paths, so a record can be rerun from any directory
    GIN_BINDINGS = "gin_bindings"
    WORKDIR = "workdir"  # as given; "" means ./workdirs/<run_uuid>
    SEED = "seed"  # mirrors the effective train.seed
    HPARAMS = "hparams"  # [name, value] pairs, in the parsed config's order


class InfoKey:
    """Keys of a run's ``info``."""

    RUN_UUID = "run_uuid"
    GIN_CONFIG = "gin_config"
    OPERATIVE_GIN_CONFIG = "operative_gin_config"
    GROUP_TABLE = "group_table"  # list of row dicts; [] without groups
    STRATEGY = "strategy"
    VERSIONS = "versions"
    TASK = "task"  # the task's run_info() (TREC: truncation statistics, split sizes)
    WORKDIR = "workdir"  # absolute checkpoint folder
    CHECKPOINT_PATH = "checkpoint_path"  # when COMPLETED
    BEAT_EVERY_S = "beat_every_s"  # heartbeat interval: readers judge a silent run DIED by it
    START_STEP = "start_step"  # the checkpoint step training started from (0: fresh)
    RESUMED_FROM = "resumed_from"  # the run UUID this one resumed
    CONTINUED_FROM = "continued_from"  # the COMPLETED run this one trained further
    STOPPED_REASON = "stopped_reason"  # why an INTERRUPTED run was stopped (status.PRUNED_REASON)
    PRUNED_AT_STEP = "pruned_at_step"
    TUNE = "tune"  # {study, trial} of a search trial
    SLURM = "slurm"  # the Slurm job of an array task
    #: Sacred's MongoObserver adds ``[{"id", "name"}, ...]`` references to its metric documents
    #: (into the info every observer of the run receives).
    MONGO_METRIC_REFS = "metrics"


class ArtifactName:
    """Artifacts every tracked run stores (TREC tasks add their run files and per-query tables,
    ``records/per_query.py``)."""

    OPERATIVE_CONFIG = "operative_config.gin"
    GROUP_TABLE = "group_table.csv"
    CHECKPOINT = "checkpoint.txt"  # the final checkpoint path


class MetricName:
    """Metric series names: ``train/loss``, ``group/<group>/<quantity>``, ``eval/<metric>``."""

    TRAIN_LOSS = "train/loss"
    GROUP_PREFIX = "group/"
    EVAL_PREFIX = "eval/"
    GROUP_QUANTITIES = ("lr", "grad_norm", "update_norm", "param_norm")

    @staticmethod
    def group(group: str, quantity: str) -> str:
        """``group/<group>/<quantity>`` (quantity one of :attr:`GROUP_QUANTITIES`)."""
        return f"{MetricName.GROUP_PREFIX}{group}/{quantity}"

    @staticmethod
    def eval(metric: str) -> str:
        """``eval/<metric>``: an evaluation metric as logged during training."""
        return f"{MetricName.EVAL_PREFIX}{metric}"


def keys(namespace: type) -> tuple[str, ...]:
    """The key values a namespace class (:class:`ConfigKey`, :class:`InfoKey`, ...) defines."""
    return tuple(
        value for name, value in vars(namespace).items()
        if name.isupper() and isinstance(value, str)
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RecordedConfig:
    """A stored ``config``, checked: what the run was asked to do."""

    gin_files: list[str]
    gin_bindings: list[str]
    hparams: dict[str, Any]  # recorded order kept
    seed: int | None = None
    workdir: str = ""

    @classmethod
    def from_record(cls, config: Any) -> RecordedConfig:
        """Read a stored ``config`` mapping.

        Raises:
            RecordError: it is not a mapping, or ``hparams`` is not a list of pairs.
        """
        if not isinstance(config, Mapping):
            raise RecordError("config is missing or not a mapping")
        seed = config.get(ConfigKey.SEED)
        workdir = config.get(ConfigKey.WORKDIR)
        return cls(
            gin_files=list(config.get(ConfigKey.GIN_FILES) or []),
            gin_bindings=list(config.get(ConfigKey.GIN_BINDINGS) or []),
            hparams=hparam_dict(config.get(ConfigKey.HPARAMS, [])),
            seed=seed if isinstance(seed, int) else None,
            workdir=workdir if isinstance(workdir, str) else "",
        )

    def to_record(self) -> dict[str, Any]:
        """The stored form (``seed`` omitted when None, as the writer omits it)."""
        out: dict[str, Any] = {
            ConfigKey.GIN_FILES: list(self.gin_files),
            ConfigKey.GIN_BINDINGS: list(self.gin_bindings),
            ConfigKey.WORKDIR: self.workdir,
            ConfigKey.HPARAMS: hparam_pairs(self.hparams.items()),
        }
        if self.seed is not None:
            out[ConfigKey.SEED] = self.seed
        return out


def hparam_pairs(flat: Any) -> list[list[Any]]:
    """``(name, value)`` items as the stored ``[name, value]`` pairs."""
    return [[name, value] for name, value in flat]


def hparam_dict(pairs: Any) -> dict[str, Any]:
    """Stored ``[name, value]`` pairs as an ordered dict (tuples read back as lists).

    Raises:
        RecordError: ``pairs`` is not a list of ``[str, value]`` pairs.
    """
    if not isinstance(pairs, list):
        raise RecordError(f"config.hparams must be a list of [name, value] pairs, got {pairs!r}")
    out: dict[str, Any] = {}
    for pair in pairs:
        if not (isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise RecordError(f"config.hparams entry {pair!r} is not a [name, value] pair")
        value = pair[1]
        out[pair[0]] = list(value) if isinstance(value, tuple) else value
    return out


@dataclasses.dataclass(frozen=True)
class RecordedInfo:
    """A stored ``info``, checked: the facts readers use (the rest stays in the store)."""

    run_uuid: str
    group_table: list[dict[str, Any]]
    workdir: str | None = None
    start_step: int = 0
    beat_every_s: float | None = None
    resumed_from: str | None = None
    continued_from: str | None = None
    stopped_reason: str | None = None

    @classmethod
    def from_record(cls, info: Any) -> RecordedInfo:
        """Read a stored ``info`` mapping.

        Raises:
            RecordError: ``run_uuid`` is missing, an identifier could name a path outside its
                folder, or ``group_table`` is not a list of row dicts.
        """
        if not isinstance(info, Mapping) or not isinstance(info.get(InfoKey.RUN_UUID), str):
            raise RecordError("info.run_uuid is missing (partial record: no heartbeat yet?)")
        _check_identifiers(info)
        table = info.get(InfoKey.GROUP_TABLE) or []
        if not isinstance(table, list) or not all(isinstance(r, Mapping) for r in table):
            raise RecordError("info.group_table is not a list of row dicts")
        start_step = info.get(InfoKey.START_STEP)
        beat = info.get(InfoKey.BEAT_EVERY_S)
        workdir = info.get(InfoKey.WORKDIR)
        return cls(
            run_uuid=info[InfoKey.RUN_UUID],
            group_table=[dict(r) for r in table],
            workdir=workdir if isinstance(workdir, str) else None,
            start_step=start_step if isinstance(start_step, int) else 0,
            beat_every_s=beat if isinstance(beat, int | float) else None,
            resumed_from=info.get(InfoKey.RESUMED_FROM),
            continued_from=_text_or_none(info.get(InfoKey.CONTINUED_FROM)),
            stopped_reason=_text_or_none(info.get(InfoKey.STOPPED_REASON)),
        )


def _check_identifiers(info: Mapping[str, Any]) -> None:
    # Identifiers become file and folder names (export, artifacts): a record whose values could
    # name a path outside its folder is refused whole (storage/paths.py).
    try:
        check_run_uuid(info[InfoKey.RUN_UUID], "info.run_uuid")
        if info.get(InfoKey.RESUMED_FROM) is not None:
            check_run_uuid(info[InfoKey.RESUMED_FROM], "info.resumed_from")
        for row in info.get(InfoKey.GROUP_TABLE) or []:
            if isinstance(row, Mapping) and "group" in row:
                check_group_name(row["group"], "info.group_table group")
    except ValueError as exc:
        raise RecordError(str(exc)) from None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def result_to_record(eval_metrics: Mapping[str, Any]) -> dict[str, float]:
    """The stored ``result``: the final evaluation metrics as floats."""
    return {str(name): float(value) for name, value in eval_metrics.items()}


def result_from_record(result: Any) -> dict[str, float]:
    """A stored ``result`` as ``{name: float}``; entries that are not numbers are left out (an
    old or foreign record may hold a bare float or None, which reads as no result)."""
    out: dict[str, float] = {}
    if isinstance(result, Mapping):
        for key, value in result.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[str(key)] = float(value)
    return out
