"""``tune --status``: a study's trials beside the runs that trained them.

One row per trial: number, Optuna state, value, the searched parameters, the run UUID (the
trial's ``run_uuid`` user attribute) and, when the runs' observers are given, the run's recorded
status (``PRUNED`` for a run stopped by the pruner: Sacred status INTERRUPTED with info
``stopped_reason: pruned``), and a note (why a trial stopped; which trial a resumed one continues).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _run_statuses(observers: Sequence[str]) -> dict[str, str]:
    from capreolus_opt.analysis.compare import status_label
    from capreolus_opt.records.load import load_runs

    if not observers:
        return {}
    return {run.run_uuid: status_label(run) for run in load_runs(*observers)}


def _note(t: Any) -> str:
    attrs = t.user_attrs
    notes = []
    if attrs.get("stopped_reason"):
        notes.append(str(attrs["stopped_reason"]))
    if "resumes_trial" in attrs:
        run = f" (run {str(attrs['resume_run'])[:8]})" if attrs.get("resume_run") else ""
        notes.append(f"resumes trial {attrs['resumes_trial']}{run}")
    return "; ".join(notes)


def trial_rows(study: Any, observers: Sequence[str] = ()) -> tuple[list[str], list[dict]]:
    """Columns and one row per trial of ``study``."""
    statuses = _run_statuses(observers)
    frozen = study.get_trials(deepcopy=False)
    params: dict[str, None] = {}
    for t in frozen:
        params.update(dict.fromkeys(t.params))
    columns = ["trial", "state", "value", *params, "run"]
    if observers:
        columns.append("run_status")
    columns.append("note")
    rows = []
    for t in frozen:
        run = t.user_attrs.get("run_uuid")
        row = {"trial": t.number, "state": t.state.name, "value": t.value, "run": run}
        row.update({name: t.params.get(name) for name in params})
        if observers:
            row["run_status"] = statuses.get(run, "not found") if run else None
        row["note"] = _note(t)
        rows.append(row)
    return columns, rows


def status_text(study: Any, observers: Sequence[str] = (), fmt: str = "table") -> str:
    """The study's summary line and its trial table, as ``fmt`` (see ``compare --format``)."""
    from capreolus_opt.analysis.compare import render

    columns, rows = trial_rows(study, observers)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    table = render(columns, rows, fmt)
    if fmt != "table":
        return table
    metric = study.user_attrs.get("metric", "?")
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no trials"
    head = f"study {study.study_name!r}: {study.direction.name.lower()} {metric}; {summary}"
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    if complete:
        best = study.best_trial
        run = best.user_attrs.get("run_uuid")
        head += f"\nbest: trial {best.number} value {best.value:.6g} run {run}"
    return f"{head}\n{table}"
