"""``export tensorboard``: every run as a TensorBoard run with its scalars and HParams data.

Layout under ``--logdir DIR``: ``DIR/<run_uuid>/events.out.tfevents.*`` per run, holding one
scalar summary per logged point (tag = metric name, step and wall time as recorded; ``eval/``
values that exist only in the run's ``result`` at the run's last step) and the HParams plugin's
session-start summary (``trial_id`` = run UUID; hyperparameters as recorded, lists, dicts and
None stringified as JSON since the plugin takes only bool/number/string). ``DIR`` itself gets
the HParams experiment summary (``*.capreolus_opt_hparams``): every hyperparameter with its
discrete domain and every non-``group/`` metric, so TensorBoard's table, parallel-coordinates and
scatter views list them. Exporting again replaces a run's folder (written beside it, then
renamed) and the experiment summary, so nothing is duplicated.

Only ``tensorboard`` (the ``tensorboard`` extra) is used, never TensorFlow: its event writer
and the ``summary_v2`` protobuf builders run without it.
"""

from __future__ import annotations

import glob
import math
import os
import shutil
import sys
import types
import uuid
from collections.abc import Sequence
from typing import Any

from capreolus_opt.export.common import (
    epoch_seconds,
    hparam_text,
    last_step,
    point_times,
    result_only_metrics,
    start_seconds,
)
from capreolus_opt.optional import require
from capreolus_opt.records.record import Run
from capreolus_opt.storage.paths import safe_join

SUFFIX = ".capreolus_opt_hparams"


def _modules() -> tuple[Any, Any, Any, Any]:
    if "tensorflow" not in sys.modules:
        # tensorboard.compat imports TensorFlow when it can (15-30 s here) unless the marker
        # module tensorboard.compat.notf exists (its no-TensorFlow build); its stub suffices.
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("notf"))
    event_pb2 = require("tensorboard.compat.proto.event_pb2", "tensorboard")
    hp = require("tensorboard.plugins.hparams.summary_v2", "tensorboard")
    scalar = require("tensorboard.plugins.scalar.summary_v2", "tensorboard")
    writer = require("tensorboard.summary.writer.event_file_writer", "tensorboard")
    return event_pb2, hp, scalar, writer.EventFileWriter


def _write_run(run: Run, folder: str) -> int:
    event_pb2, hp, scalar, writer_cls = _modules()
    writer = writer_cls(folder)
    start = start_seconds(run)
    hparams = {name: hparam_text(value) for name, value in run.hparams.items()}
    summary = hp.hparams_pb(hparams, trial_id=run.run_uuid, start_time_secs=start or None)
    writer.add_event(event_pb2.Event(wall_time=start, step=0, summary=summary))
    points = 0
    for name, series in run.metrics.items():
        for step, value, stamp in zip(
            series.steps, series.values, point_times(series), strict=True
        ):
            event = event_pb2.Event(
                wall_time=epoch_seconds(stamp, start), step=int(step),
                summary=scalar.scalar_pb(name, float(value)),
            )  # fmt: skip
            writer.add_event(event)
            points += 1
    end = epoch_seconds(run.stop_time, start)
    for name, value in result_only_metrics(run).items():
        summary = scalar.scalar_pb(name, value)
        writer.add_event(event_pb2.Event(wall_time=end, step=last_step(run), summary=summary))
        points += 1
    writer.close()
    return points


def _write_experiment(runs: Sequence[Run], logdir: str) -> None:
    event_pb2, hp, _, writer_cls = _modules()
    values: dict[str, dict[str, Any]] = {}
    for run in runs:
        for name, value in run.hparams.items():
            text = hparam_text(value)
            values.setdefault(name, {})[repr(text)] = text
    params = []
    # Settings that differ first: TensorBoard's table shows the first few columns only.
    order = sorted(values, key=lambda name: len(values[name]) < 2)
    for name in order:
        seen = values[name]
        kinds = {type(v) for v in seen.values()}
        finite = all(not isinstance(v, float) or math.isfinite(v) for v in seen.values())
        # Discrete domains must hold one type; mixed types (1 and "auto") get no domain.
        domain = hp.Discrete(list(seen.values())) if len(kinds) == 1 and finite else None
        params.append(hp.HParam(name, domain))
    names = sorted({m for run in runs for m in run.metric_names() if not m.startswith("group/")})
    summary = hp.hparams_config_pb(params, [hp.Metric(m) for m in names])
    for old in glob.glob(os.path.join(glob.escape(logdir), f"events.out.tfevents.*{SUFFIX}")):
        os.remove(old)
    writer = writer_cls(logdir, filename_suffix=SUFFIX)
    first = min(start_seconds(r) for r in runs)
    writer.add_event(event_pb2.Event(wall_time=first, summary=summary))
    writer.close()


def _usable_logdir(logdir: str) -> None:
    """Create ``logdir`` if needed; ValueError naming it when it is not a writable folder."""
    if os.path.exists(logdir) and not os.path.isdir(logdir):
        raise ValueError(f"--logdir {logdir}: is a file, expected a folder")
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--logdir {logdir}: cannot create the folder ({exc.strerror})") from None
    if not os.access(logdir, os.W_OK | os.X_OK):
        raise ValueError(f"--logdir {logdir}: the folder is not writable")


def export_tensorboard(runs: Sequence[Run], logdir: str) -> dict[str, int]:
    """Write ``runs`` under ``logdir`` (see the module docstring); returns points per run UUID."""
    if not runs:
        return {}
    _modules()  # fail before touching the folder when tensorboard is missing
    _usable_logdir(logdir)
    # Every folder name comes from a record: checked to stay inside logdir before anything is
    # written (the readers already refuse a run_uuid that is not 32 hex digits).
    targets = {run.run_uuid: safe_join(logdir, run.run_uuid) for run in runs}
    written = {}
    for run in runs:
        final = targets[run.run_uuid]
        staging = safe_join(logdir, f".{run.run_uuid}.{uuid.uuid4().hex[:8]}.partial")
        try:
            written[run.run_uuid] = _write_run(run, staging)
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.rename(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _write_experiment(runs, logdir)
    return written
