"""``export mlflow``: every run as an MLflow run, idempotent by our run UUID.

Each run becomes one MLflow run in experiment ``--experiment`` (default ``capreolus_opt``) of
``--tracking-uri`` (``sqlite:///mlflow.db``, ``http://host:5000``, a ``file:`` store...):
start/end times and status (COMPLETED -> FINISHED, FAILED -> FAILED, INTERRUPTED -> KILLED, a
RUNNING run stays RUNNING), its hyperparameters as params (lists and dicts as JSON text, values cut
to MLflow's 6,000 characters), every metric point with its step and time, ``eval/`` values that
exist only in ``result`` at the last step, and the tags ``capreolus_opt.run_uuid``,
``capreolus_opt.status``, ``capreolus_opt.sources``. A run whose UUID the experiment already
holds is skipped, so exporting twice adds nothing; one whose export stopped half-way (no
``capreolus_opt.exported`` tag, which is set last) is deleted and exported again.

MLflow accepts param/metric names of letters, digits, ``_ - . / : `` and space that stay the
same under ``posixpath.normpath``, at most 250 characters (``mlflow.utils.validation``):
:func:`mlflow_name` turns ``AdamMultilr.pattern_lrs[0].lr`` into ``AdamMultilr.pattern_lrs.0.lr``
and ``eval/mrr@10`` into ``eval/mrr_at_10``; the tag ``capreolus_opt.renamed`` lists the
renamings as JSON. Needs the ``mlflow`` extra (full ``mlflow`` for ``sqlite:`` stores and the UI;
``mlflow-skinny`` suffices for ``http://`` servers and ``file:`` stores).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from capreolus_opt.export.common import (
    epoch_seconds,
    hparam_text,
    last_step,
    point_times,
    result_only_metrics,
    run_names,
    start_seconds,
)
from capreolus_opt.optional import require
from capreolus_opt.records import status
from capreolus_opt.records.record import Run

UUID_TAG = "capreolus_opt.run_uuid"
# Our statuses as MLflow's RunStatus names.
_STATUS = {status.COMPLETED: "FINISHED", status.FAILED: "FAILED", status.INTERRUPTED: "KILLED"}
_MAX_KEY, _MAX_VALUE, _BATCH = 250, 6000, 1000
# Set last: a run without it is a crashed export, deleted and exported again.
_DONE_TAG = "capreolus_opt.exported"


def mlflow_name(name: str) -> str:
    """``name`` rewritten into MLflow's allowed characters (see the module docstring)."""
    out = re.sub(r"\[(\d+)\]", r".\1", name).replace("@", "_at_")
    out = re.sub(r"[^\w./\- :]", "_", out)
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in out.split("/") if p]
    return "/".join(parts)[:_MAX_KEY] or "_"


def _unique_names(names: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        candidate, k = mlflow_name(name), 2
        while candidate in taken:
            candidate, k = f"{mlflow_name(name)[: _MAX_KEY - 4]}_{k}", k + 1
        out[name] = candidate
        taken.add(candidate)
    return out


def _existing(client: Any, experiment_id: str) -> dict[str, tuple[str, bool]]:
    """``run_uuid -> (mlflow run id, finished exporting)`` for the experiment's runs."""
    seen: dict[str, tuple[str, bool]] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        for found in page:
            tags = found.data.tags
            if UUID_TAG in tags:
                seen[tags[UUID_TAG]] = (found.info.run_id, tags.get(_DONE_TAG) == "true")
        token = page.token
        if not token:
            return seen


def _points(run: Run, names: dict[str, str]) -> list[Any]:
    Metric = require("mlflow.entities", "mlflow").Metric

    start = start_seconds(run)
    out = []
    for name, series in run.metrics.items():
        for step, value, stamp in zip(
            series.steps, series.values, point_times(series), strict=True
        ):
            ms = int(epoch_seconds(stamp, start) * 1000)
            out.append(Metric(names[name], float(value), ms, int(step)))
    end = int(epoch_seconds(run.stop_time, start) * 1000)
    for name, value in result_only_metrics(run).items():
        out.append(Metric(names[name], value, end, last_step(run)))
    return out


def _export_one(client: Any, experiment_id: str, run: Run, label: str) -> None:
    entities = require("mlflow.entities", "mlflow")
    Param, RunTag = entities.Param, entities.RunTag

    params = _unique_names(list(run.hparams))
    metrics = _unique_names(sorted({*run.metrics, *result_only_metrics(run)}))
    renamed = {k: v for k, v in {**params, **metrics}.items() if k != v}
    tags = {UUID_TAG: run.run_uuid, "capreolus_opt.status": run.status,
            "capreolus_opt.sources": json.dumps(run.sources)}  # fmt: skip
    if renamed:
        tags["capreolus_opt.renamed"] = json.dumps(renamed)[:_MAX_VALUE]
    start_ms = int(start_seconds(run) * 1000) or None
    created = client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=label)
    run_id = created.info.run_id
    entries = [Param(params[k], str(hparam_text(v))[:_MAX_VALUE]) for k, v in run.hparams.items()]
    for i in range(0, len(entries), 100):
        client.log_batch(run_id, params=entries[i : i + 100])
    points = _points(run, metrics)
    for i in range(0, len(points), _BATCH):
        client.log_batch(run_id, metrics=points[i : i + _BATCH])
    client.log_batch(run_id, tags=[RunTag(_DONE_TAG, "true")])
    if run.status in _STATUS:
        end_ms = int(epoch_seconds(run.stop_time, start_seconds(run)) * 1000) or None
        client.set_terminated(run_id, status=_STATUS[run.status], end_time=end_ms)


#: How long ``export mlflow`` waits for an ``http(s)://`` server to answer, per request.
TIMEOUT_S = 10.0
# MLflow's own defaults (7 retries, backoff factor 2, 120 s per request) keep a command waiting
# for minutes on a server that is down; an export is rerunnable, so it fails fast instead.
_HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def check_server(tracking_uri: str, timeout_s: float) -> None:
    """For an ``http(s)://`` URI, ValueError unless something answers ``/health`` within
    ``timeout_s`` (any HTTP answer counts: the server is there)."""
    import urllib.error
    import urllib.request

    if not tracking_uri.lower().startswith(("http://", "https://")):
        return
    from capreolus_opt.storage import mask_url

    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:  # an answer, e.g. 401 or 404: a server is listening
        return
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
        reason = getattr(exc, "reason", exc)
        raise ValueError(
            f"--tracking-uri {mask_url(tracking_uri)}: no MLflow server answered within "
            f"{timeout_s:g} s ({reason}); expected a running `mlflow server` at that address"
        ) from None


def export_mlflow(
    runs: Sequence[Run],
    tracking_uri: str,
    experiment: str = "capreolus_opt",
    *,
    timeout_s: float | None = None,
) -> tuple[int, int]:
    """Export ``runs`` into ``experiment`` at ``tracking_uri``; returns ``(added, skipped)``.

    Raises:
        ValueError: an ``http(s)://`` server does not answer within ``timeout_s`` (default
            :data:`TIMEOUT_S`).
    """
    timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
    MlflowClient = require("mlflow.tracking", "mlflow").MlflowClient
    check_server(tracking_uri, timeout_s)
    bounds = {**_HTTP_BOUNDS, "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout_s)))}
    saved = {name: os.environ.get(name) for name in bounds}
    os.environ.update({k: v for k, v in bounds.items() if saved[k] is None})  # user's win
    try:
        return _export_all(MlflowClient(tracking_uri=tracking_uri), runs, experiment)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def _export_all(client: Any, runs: Sequence[Run], experiment: str) -> tuple[int, int]:
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    existing = _existing(client, experiment_id)
    labels = run_names(runs)
    added = 0
    for run in runs:
        mlflow_id, complete = existing.get(run.run_uuid, (None, False))
        if complete:
            continue
        if mlflow_id is not None:  # an export that died half-way: start that run afresh
            client.delete_run(mlflow_id)
        _export_one(client, experiment_id, run, labels[run.run_uuid])
        added += 1
    return added, len(runs) - added
