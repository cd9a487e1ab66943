"""The ``compare`` table: one row per run, only the hyperparameters that differ, metric summaries.

Columns: ``run`` (UUID; its first 8 hex digits in text tables), ``status`` (``PRUNED`` for a run a
search's pruner stopped, see :func:`status_label`), ``duration_s``, each
hyperparameter whose value is not the same in every listed run, then ``<metric>:final`` and
``<metric>:best`` per chosen metric. "final" is the value at the largest step; "best" is the
minimum for losses/errors, the maximum for other metrics, and absent (no column) for the
``group/`` diagnostics, which have no better direction (:func:`records.best_direction`). Runs with
no series for an ``eval/`` metric fall back to their ``result`` dict.

A reranker's run records, beside each metric, the model alone (``<split>/model/<m>``), the first
stage (``<split>/first_stage/<m>``) and each run's paired tests against the first stage
(``<split>/model/p_ttest``, ``p_randomisation``, ``wins``, ``ties``, ``losses``; also
``<split>/interpolated/...`` when it interpolates): :data:`VS_FIRST_STAGE` selects them for
``test`` (``compare --vs-first-stage``). p-values and counts have no ``:best`` column.

Metric selection: default = every ``eval/...`` metric any run has, plus ``train/loss``; names may
be shell-style globs (``group/*/update_norm``) expanded against the metrics the runs have.
"""

from __future__ import annotations

import ast
import csv
import fnmatch
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from capreolus_opt.records import status as run_status
from capreolus_opt.records.record import Run, best_direction, differing_hparams

FORMATS = ("table", "csv", "json", "markdown")
#: Metric patterns of ``compare --vs-first-stage``: the test split's reported nDCG@10, the model
#: alone, the first stage, and the p-values of the model and the interpolated run against it.
VS_FIRST_STAGE = (
    "eval/test/ndcg@10",
    "eval/test/model/ndcg@10",
    "eval/test/first_stage/ndcg@10",
    "eval/test/*/p_*",
    "eval/test/*/wins",
    "eval/test/*/losses",
)


def select_metrics(runs: Sequence[Run], patterns: Sequence[str] | None) -> tuple[list[str], list]:
    """Expand metric patterns against the runs' metrics.

    Returns:
        ``(names, unmatched_patterns)``; names keep pattern order, sorted within a glob.
    """
    available = sorted(set().union(*(run.metric_names() for run in runs))) if runs else []
    if not patterns:
        chosen = [name for name in available if name.startswith("eval/")]
        return chosen + (["train/loss"] if "train/loss" in available else []), []
    names: dict[str, None] = {}
    unmatched = []
    for pattern in patterns:
        matched = fnmatch.filter(available, pattern)
        if not matched:
            unmatched.append(pattern)
        names.update(dict.fromkeys(matched))
    return list(names), unmatched


def parse_literal(text: str) -> Any:
    """A Python/gin literal (``1e-3``, ``True``, ``'adam'``, ``[1, 2]``), else the raw string."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def _values_equal(recorded: Any, wanted: Any) -> bool:
    if isinstance(recorded, bool) or isinstance(wanted, bool):
        return recorded is wanted or str(recorded) == str(wanted)
    if isinstance(recorded, int | float) and isinstance(wanted, int | float):
        return math.isclose(recorded, wanted, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(recorded, list | tuple) and isinstance(wanted, list | tuple):
        return len(recorded) == len(wanted) and all(map(_values_equal, recorded, wanted))
    return recorded == wanted or str(recorded) == str(wanted)


def resolve_hparam(runs: Sequence[Run], name: str) -> str:
    """The recorded hparam called ``name`` exactly, or the only one ending in ``.name``.

    Raises:
        ValueError: naming ``name`` when no (or more than one) hyperparameter matches.
    """
    known = sorted(set().union(*(run.hparams for run in runs))) if runs else []
    if name in known:
        return name
    suffix = [k for k in known if k.endswith("." + name)]
    if len(suffix) == 1:
        return suffix[0]
    if suffix:
        raise ValueError(f"hyperparameter {name!r} is ambiguous: it could be any of {suffix}")
    raise ValueError(f"no run has hyperparameter {name!r}; recorded ones are {known}")


def filter_runs(
    runs: Sequence[Run], where: Sequence[str] = (), status: Sequence[str] = ()
) -> list[Run]:
    """Keep runs whose status is in ``status`` (any when empty) and that match every
    ``PARAM=VALUE`` in ``where`` (VALUE parsed as a literal; numbers compared to 1e-9 relative).

    Raises:
        ValueError: for a ``where`` item without ``=`` or naming an unknown hyperparameter.
    """
    wanted_status = {s.upper() for item in status for s in item.split(",") if s}
    kept = [
        run
        for run in runs
        if not wanted_status or {run.status.upper(), status_label(run)} & wanted_status
    ]
    for item in where:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--where {item!r} is not of the form PARAM=VALUE")
        full = resolve_hparam(runs, name.strip())
        value = parse_literal(text)
        kept = [r for r in kept if full in r.hparams and _values_equal(r.hparams[full], value)]
    return kept


def status_label(run: Run) -> str:
    """The status a table shows: ``PRUNED`` for a run a search's pruner stopped (recorded as
    INTERRUPTED with ``info.stopped_reason = "pruned"``), else the recorded status."""
    return run_status.shown_status(run.status, run.stopped_reason)


def compare_rows(runs: Sequence[Run], metrics: Sequence[str]) -> tuple[list[str], list[dict]]:
    """Columns and one row dict per run (raw values: floats, None for missing)."""
    params = differing_hparams(runs)
    columns = ["run", "status", "duration_s", *params]
    for metric in metrics:
        columns.append(f"{metric}:final")
        if best_direction(metric) is not None:
            columns.append(f"{metric}:best")
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.run_uuid, "status": status_label(run)}
        row["duration_s"] = run.duration
        row.update({name: run.hparams.get(name) for name in params})
        for metric in metrics:
            row[f"{metric}:final"] = run.final(metric)
            if best_direction(metric) is not None:
                row[f"{metric}:best"] = run.best(metric)
        rows.append(row)
    return columns, rows


def sort_rows(columns: Sequence[str], rows: list[dict], key: str) -> list[dict]:
    """Sort by column ``key`` (``-key`` descending); a bare metric name means ``<metric>:final``.

    Missing values sort last either way. Raises ValueError naming an unknown column.
    """
    descending = key.startswith("-")
    name = key[1:] if descending else key
    if name not in columns and f"{name}:final" in columns:
        name = f"{name}:final"
    if name not in columns:
        raise ValueError(f"--sort {key!r}: no such column; columns are {list(columns)}")
    present = [r for r in rows if r.get(name) is not None]
    missing = [r for r in rows if r.get(name) is None]
    try:
        present.sort(key=lambda r: r[name], reverse=descending)
    except TypeError:  # mixed types (e.g. a hyperparameter that is a number in some runs only)
        present.sort(key=lambda r: str(r[name]), reverse=descending)
    return present + missing


def format_value(value: Any) -> str:
    """Text form for tables: floats to 6 significant digits, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _json_safe(value: Any) -> Any:
    # NaN/inf are not JSON; a metric that diverged reads as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render(columns: Sequence[str], rows: Sequence[dict], fmt: str) -> str:
    """Render rows as ``table`` (aligned text), ``csv``, ``json`` (a list of objects) or
    ``markdown``. Text forms shorten the ``run`` UUID to 8 characters."""
    if fmt == "json":
        records = [{c: _json_safe(row.get(c)) for c in columns} for row in rows]
        return json.dumps(records, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        return out.getvalue()
    cells = [
        [format_value(row.get(c))[:8] if c == "run" else format_value(row.get(c)) for c in columns]
        for row in rows
    ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(line) + " |" for line in cells]
        return "\n".join(lines) + "\n"
    if fmt != "table":
        raise ValueError(f"format {fmt!r} is not one of {FORMATS}")
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return "\n".join(lines) + "\n"
