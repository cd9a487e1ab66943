"""The Sacred experiment that runs a gin-configured training and records it.

``make_experiment()`` returns a fresh ``sacred.Experiment`` with no observer: the caller attaches
them (``capreolus-opt train``, ``experiments/train.py`` or a test), never this module. What it
records is :mod:`capreolus_opt.records.schema`'s shape: config ``gin_files``, ``gin_bindings``,
``workdir``, ``seed`` and ``hparams`` (``[name, value]`` pairs from the parsed gin config, added
by a config hook, so a bad gin file fails before any observer records a run); the info keys of
:class:`~capreolus_opt.records.schema.InfoKey`; the artifacts of
:class:`~capreolus_opt.records.schema.ArtifactName`; metrics through
:class:`SacredMetricsSink`; result the final evaluation metrics as floats.

``seed`` mirrors gin's ``train.seed`` when the training function has one (bind ``train.seed``
to change it; the CLI's ``--seed`` does).
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import sys
import tempfile
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

from sacred import Experiment
from sacred.utils import apply_backspaces_and_linefeeds

from capreolus_opt.records.schema import ArtifactName, ConfigKey, InfoKey, result_to_record
from capreolus_opt.storage.workdir_layout import Workdir
from capreolus_opt.tracking.redact import REDACTOR
from capreolus_opt.tracking.sink import DEFAULT_BEAT_S, SacredMetricsSink

#: The smoke config, used by the ``fast`` named config (seconds on a CPU).
SMOKE_GIN = str(Path(__file__).resolve().parents[2] / "gin_configs" / "smoke.gin")

_VERSIONED = (
    "capreolus_opt",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "gin-config",
    "sacred",
    "numpy",
    "sqlalchemy",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run depends on (absent ones omitted), and Python."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (Sacred's capture swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _redacting_logger() -> logging.Logger:
    """Sacred's run logger, writing to stderr through the password redactor."""
    logger = logging.getLogger("capreolus_opt.run")
    if not logger.handlers:
        handler = _CurrentStderrHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s - %(name)s - %(message)s"))
        handler.addFilter(REDACTOR)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def _filter_output(text: str) -> str:
    return REDACTOR.redact(apply_backspaces_and_linefeeds(text))


def make_experiment(
    *,
    name: str = "capreolus_opt",
    backend: Any = None,
    flush_every_s: float = DEFAULT_BEAT_S,
    parsed: Any = None,
) -> Experiment:
    """Return a new, unobserved Sacred experiment whose main function trains and records.

    Args:
        name: experiment name stored with every run.
        backend: an object with :mod:`capreolus_opt.config`'s functions (``parse_config``,
            ``run_training``, ``flat_hyperparameters``, ``config_text``,
            ``operative_config_text``); defaults to that package, imported only when a run
            starts (it imports TensorFlow).
        flush_every_s: how often metrics and a heartbeat are delivered to observers while
            training (the durability bound; recorded as ``info.beat_every_s``).
        parsed: the run's config as :func:`capreolus_opt.tracking.run.parse_run_config` parsed
            it (what :func:`~capreolus_opt.tracking.run.run_tracked` passes): the experiment
            records it and parses nothing itself. Without it (Sacred's own command line), the
            config hook parses ``gin_files`` and ``gin_bindings`` once, and the run uses that.
    """
    ex = Experiment(name, save_git_info=False)
    ex.logger = _redacting_logger()
    ex.captured_out_filter = _filter_output

    def get_backend() -> Any:
        if backend is not None:
            return backend
        return importlib.import_module("capreolus_opt.config")

    @ex.config
    def config():  # Sacred names the entries after these variables: ConfigKey's values
        gin_files = []  # noqa: F841  gin files, parsed in order
        gin_bindings = []  # noqa: F841  extra bindings, parsed after the files
        workdir = ""  # noqa: F841  checkpoint folder; "" = ./workdirs/<run_uuid>

    @ex.named_config
    def fast():
        gin_files = [SMOKE_GIN]  # noqa: F841

    # The config of the run being started: ``parsed`` when it is that run's, else parsed by the
    # config hook (which runs once per run, before any observer records it).
    state = {"parsed": None}

    @ex.config_hook
    def add_hparams(config, command_name, logger):
        _check_string_list(config[ConfigKey.GIN_FILES], ConfigKey.GIN_FILES)
        _check_string_list(config[ConfigKey.GIN_BINDINGS], ConfigKey.GIN_BINDINGS)
        files, bindings = list(config[ConfigKey.GIN_FILES]), list(config[ConfigKey.GIN_BINDINGS])
        known = parsed
        if known is None or (known.gin_files, known.gin_bindings) != (files, bindings):
            from capreolus_opt.tracking.run import parse_run_config

            known = parse_run_config(get_backend(), files, bindings)
        state["parsed"] = known
        updates: dict[str, Any] = {ConfigKey.HPARAMS: [list(pair) for pair in known.hparams]}
        if known.seed is not None:
            updates[ConfigKey.SEED] = known.seed
        return updates

    @ex.main
    def train(_run, gin_files, gin_bindings, workdir):
        return _train_recorded(_run, get_backend(), state["parsed"], workdir, flush_every_s)

    return ex


def _check_string_list(value: Any, key: str) -> None:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"config {key!r} must be a list of strings, received {value!r}.")


def _train_recorded(
    run: Any,
    gin: Any,
    parsed: Any,
    workdir: str,
    flush_every_s: float,
) -> dict[str, float]:
    """Main function body: train the parsed config with a Sacred sink, record
    info/artifacts/result."""
    info = run.info
    run_uuid = info.setdefault(InfoKey.RUN_UUID, uuid.uuid4().hex)
    info[InfoKey.WORKDIR] = os.path.abspath(workdir or Workdir.for_run("", run_uuid).root)
    info[InfoKey.VERSIONS] = package_versions()
    info[InfoKey.BEAT_EVERY_S] = flush_every_s  # readers judge a silent heartbeat by it (DIED)
    info[InfoKey.GIN_CONFIG] = parsed.config_text
    sink = SacredMetricsSink(run, flush_every_s=flush_every_s)
    with tempfile.TemporaryDirectory(prefix="capreolus-artifacts-") as tmp:

        def add_artifact(name: str, text: str) -> None:
            path = os.path.join(tmp, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            run.add_artifact(path, name, content_type="text/plain")

        def on_start(start_info: dict) -> None:
            table = start_info.get("group_table")  # None for an optimizer without groups
            info[InfoKey.GROUP_TABLE] = table.to_records() if table is not None else []
            info[InfoKey.STRATEGY] = start_info.get("strategy_summary", {})
            info[InfoKey.TASK] = start_info.get("task_info", {})  # e.g. truncation statistics
            # A resumed run restarts from its checkpoint: its points replace the prior run's
            # points after this step (docs/ARCHITECTURE.md, "Resuming").
            info[InfoKey.START_STEP] = int(start_info.get("start_step", 0))
            if table is not None:
                add_artifact(ArtifactName.GROUP_TABLE, table.to_csv())
            sink.beat()  # the group table reaches the observers before the first step

        try:
            result = gin.run_training(workdir=info[InfoKey.WORKDIR], sink=sink, on_start=on_start)
            info[InfoKey.CHECKPOINT_PATH] = result.checkpoint_path
            add_artifact(ArtifactName.CHECKPOINT, f"{result.checkpoint_path or ''}\n")
            for path in getattr(result, "artifacts", []):  # run files, per-query metrics
                run.add_artifact(path, os.path.basename(path))
            return result_to_record(result.eval_metrics)
        finally:
            # Also on failure and interrupt: what gin used so far, and every queued point (the
            # info reaches the observers with Sacred's final beat, when the run stops).
            info[InfoKey.OPERATIVE_GIN_CONFIG] = gin.operative_config_text()
            add_artifact(ArtifactName.OPERATIVE_CONFIG, info[InfoKey.OPERATIVE_GIN_CONFIG])
            sink.flush()
