"""The grouped ``compare`` output: groups table, baseline comparisons, paper tables.

``table``/``csv``: the groups table, then (with ``--baseline``) a blank line, a line naming the
baseline and the comparison table (``group, metric, diff, test, p, p_holm``); ``json``: an object
``{"groups": [...], "baseline": gid | null, "comparisons": [...]}`` whose group entries also
list their run UUIDs; ``latex``/``markdown``: the paper table of ``latex.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from capreolus_opt.analysis import seed_groups as grouping
from capreolus_opt.analysis.compare import _json_safe, render, sort_rows
from capreolus_opt.analysis.latex import paper_table
from capreolus_opt.records.record import Run


def singleton_groups(runs: Sequence[Run]) -> list[grouping.Group]:
    """One group per run (labelled by its differing hyperparameters, else its short id)."""
    names = list(dict.fromkeys(name for run in runs for name in run.hparams))
    out = grouping.group_runs(runs, names) if names else []
    if len(out) != len(runs):  # identical settings recorded twice: fall back to run ids
        out = [grouping.Group(run.short_id, {}, [run], run.short_id) for run in runs]
    for group in out:
        group.gid = group.runs[0].short_id
    return out


def grouped_report(
    runs: Sequence[Run],
    metrics: Sequence[str],
    *,
    group_by: Sequence[str] | None,
    baseline: str | None,
    fmt: str,
    sort: str | None = None,
    alpha: float = 0.05,
    n_resamples: int = 9999,
) -> str:
    """Render the grouped comparison of ``runs`` (``group_by=None``: one group per run).

    Raises:
        ValueError: for an unknown ``group_by`` hyperparameter, ``baseline`` or ``sort`` column.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"--alpha must be in (0, 1), got {alpha!r}")
    groups = singleton_groups(runs) if group_by is None else grouping.group_runs(runs, group_by)
    columns, rows = grouping.group_rows(groups, metrics)
    base = grouping.find_group(groups, baseline) if baseline else None
    comparisons = (
        grouping.compare_to_baseline(groups, base, metrics, n_resamples=n_resamples)
        if base is not None
        else []
    )
    if fmt in ("latex", "markdown"):
        return paper_table(
            groups, rows, metrics, comparisons=comparisons, baseline=base, alpha=alpha, fmt=fmt
        )
    if sort:
        name = sort.lstrip("-")
        if name in metrics:
            sort = sort.replace(name, f"{name}:mean", 1)
        rows = sort_rows(columns, rows, sort)
    crows = grouping.comparison_rows(comparisons)
    if fmt == "json":
        by_gid = {g.gid: g for g in groups}
        records = [
            {**{c: _json_safe(row.get(c)) for c in columns}, "label": by_gid[row["group"]].label,
             "runs": [r.run_uuid for r in by_gid[row["group"]].runs]}
            for row in rows
        ]  # fmt: skip
        payload: dict[str, Any] = {
            "groups": records,
            "baseline": base.gid if base else None,
            "comparisons": crows,
        }
        return json.dumps(payload, indent=2) + "\n"
    text = render(columns, rows, fmt)
    if base is None:
        return text
    heading = (
        f"differences to baseline {base.gid} ({base.label}); p_holm: Holm-corrected over the "
        "comparisons made with the same test"
    )
    sep = "\n" if fmt == "csv" else f"\n{heading}\n"
    return text + sep + render(grouping.COMPARISON_COLUMNS, crows, fmt)
