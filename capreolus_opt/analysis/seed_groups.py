"""Groups of runs (one setting, several seeds) and their comparison with a baseline group.

Grouping: ``group_runs(runs, by=None)`` puts together runs that differ only in the seed, i.e. in
the hyperparameters of :data:`SEED_HPARAMS` (``train.seed``, which ``config.seed`` mirrors);
``by=[names]`` groups by those hyperparameters only (full names or unique ``.suffix``es, as
``--where``). Runs are taken in order of start time (then UUID), so every store of the same runs
gives the same groups whatever order it lists them in; groups are numbered ``g1, g2, ...`` in order
of their first run, and a group's label is made of the grouping settings that differ between groups.

Per group and metric the table gives ``n`` and the :func:`stats.summarize` of the runs' final
values: mean, sample std and a 95% Student-t interval (columns ``<m>:mean``, ``<m>:std``,
``<m>:ci95_low``, ``<m>:ci95_high``).

Baseline comparisons (:func:`compare_to_baseline`): for every other group and metric, the
difference of means (group - baseline) and a two-sided p-value. When every run of both groups
has per-query values of the metric (:meth:`Run.per_query`), each group's per-query values are
averaged over its seeds and the groups are compared on their common queries by a paired t-test
and a paired randomisation test; otherwise by Welch's t-test over the runs' final values. Holm's
correction runs over all comparisons made with the same kind of test (every group x metric).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

from capreolus_opt import stats
from capreolus_opt.analysis.compare import format_value, resolve_hparam
from capreolus_opt.records.per_query import group_means
from capreolus_opt.records.record import Run

SEED_HPARAMS = ("train.seed",)
_UNSET = "unset"
_SUMMARY_FIELDS = ("mean", "std", "ci95_low", "ci95_high")


@dataclasses.dataclass
class Group:
    """Runs sharing one setting: ``settings`` maps each grouping hyperparameter to its value."""

    gid: str
    settings: dict[str, Any]
    runs: list[Run]
    label: str = ""


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _start_order(run: Run) -> tuple[bool, float, str]:
    if run.start_time is None:  # runs without one keep their given order, after the others
        return (True, 0.0, "")
    return (False, run.start_time.timestamp(), run.run_uuid)


def group_runs(runs: Sequence[Run], by: Sequence[str] | None = None) -> list[Group]:
    """Group ``runs`` by the hyperparameters ``by`` (default: all but :data:`SEED_HPARAMS`).

    Raises:
        ValueError: naming a ``by`` entry that is no (or an ambiguous) hyperparameter.
    """
    runs = sorted(runs, key=_start_order)  # stores list concurrent runs in different orders
    if by:
        names = list(dict.fromkeys(resolve_hparam(runs, name) for name in by))
    else:
        seen: dict[str, None] = {}
        for run in runs:
            seen.update(dict.fromkeys(k for k in run.hparams if k not in SEED_HPARAMS))
        names = list(seen)
    groups: dict[str, Group] = {}
    for run in runs:
        settings = {name: run.hparams.get(name, _UNSET) for name in names}
        key = _key(settings)
        if key not in groups:
            groups[key] = Group(f"g{len(groups) + 1}", settings, [])
        groups[key].runs.append(run)
    out = list(groups.values())
    shown = differing_settings(out)
    for group in out:
        parts = [f"{short}={format_value(group.settings[name])}" for name, short in shown.items()]
        group.label = ", ".join(parts) or "all runs"
    return out


def differing_settings(groups: Sequence[Group]) -> dict[str, str]:
    """Grouping hyperparameters whose value differs between groups -> their short label name
    (the part after the last dot, unless two would share it)."""
    if not groups:
        return {}
    names = [
        n for n in groups[0].settings if len({_key(g.settings[n]) for g in groups}) > 1
    ]  # fmt: skip
    leaves = [n.rsplit(".", 1)[-1] for n in names]
    return {
        n: (leaf if leaves.count(leaf) == 1 else n) for n, leaf in zip(names, leaves, strict=True)
    }


def _finals(group: Group, metric: str) -> list[float]:
    return [v for v in (run.final(metric) for run in group.runs) if v is not None]


def group_rows(
    groups: Sequence[Group], metrics: Sequence[str], confidence: float = 0.95
) -> tuple[list[str], list[dict]]:
    """Columns and one row per group: ``group, n``, the differing settings, metric summaries."""
    shown = list(differing_settings(groups))
    columns = ["group", "n", *shown]
    columns += [f"{m}:{f}" for m in metrics for f in _SUMMARY_FIELDS]
    rows = []
    for group in groups:
        row: dict[str, Any] = {"group": group.gid, "n": len(group.runs)}
        row.update({name: group.settings[name] for name in shown})
        for metric in metrics:
            s = stats.summarize(_finals(group, metric), confidence)
            values = (s.mean, s.std, s.ci_low, s.ci_high)
            for field, value in zip(_SUMMARY_FIELDS, values, strict=True):
                row[f"{metric}:{field}"] = None if math.isnan(value) else value
        rows.append(row)
    return columns, rows


def find_group(groups: Sequence[Group], text: str) -> Group:
    """The group named by ``text``: a group id (``g2``), its label, a run UUID or unique prefix
    of one of its runs, or ``NAME=VALUE[,NAME=VALUE]`` matching exactly one group's settings.

    Raises:
        ValueError: listing the groups when ``text`` names none or several.
    """
    from capreolus_opt.analysis.compare import _values_equal, parse_literal

    wanted = text.strip()
    for group in groups:
        if wanted in (group.gid, group.label):
            return group
    by_run = [g for g in groups if any(r.run_uuid.startswith(wanted) for r in g.runs)]
    if len(wanted) >= 4 and len(by_run) == 1:
        return by_run[0]
    if "=" in wanted:
        matches = list(groups)
        for item in wanted.split(","):
            name, _, value = item.partition("=")
            full = resolve_hparam([r for g in groups for r in g.runs], name.strip())
            literal = parse_literal(value)
            matches = [
                g for g in matches
                if full in g.settings and _values_equal(g.settings[full], literal)
            ]  # fmt: skip
        if len(matches) == 1:
            return matches[0]
    known = "; ".join(f"{g.gid} ({g.label}, {len(g.runs)} runs)" for g in groups)
    raise ValueError(f"--baseline {text!r} names no single group; groups are: {known}")


@dataclasses.dataclass
class Comparison:
    """One test of one group against the baseline on one metric."""

    group: str
    metric: str
    result: stats.TestResult
    family: str
    p_holm: float = math.nan


def _paired_values(group: Group, metric: str) -> dict[str, float] | None:
    per_run = [run.per_query(metric) for run in group.runs]
    if not per_run or any(values is None for values in per_run):
        return None
    return group_means(per_run)


def compare_to_baseline(
    groups: Sequence[Group],
    baseline: Group,
    metrics: Sequence[str],
    *,
    n_resamples: int = 9999,
    seed: int = 0,
) -> list[Comparison]:
    """Test every other group against ``baseline`` on each metric; Holm-adjust per test kind.

    Raises:
        per_query.PerQueryError: when a per-query artifact breaks the format.
    """
    out: list[Comparison] = []
    for metric in metrics:
        base_q = _paired_values(baseline, metric)
        for group in groups:
            if group is baseline:
                continue
            other_q = _paired_values(group, metric) if base_q is not None else None
            common = sorted(set(base_q or ()) & set(other_q or ()))
            if len(common) >= 2:
                a = [other_q[q] for q in common]
                b = [base_q[q] for q in common]
                out.append(Comparison(group.gid, metric, stats.paired_t_test(a, b), "t"))
                perm = stats.permutation_test(a, b, n_resamples=n_resamples, seed=seed)
                out.append(Comparison(group.gid, metric, perm, "randomisation"))
            else:
                welch = stats.welch_test(_finals(group, metric), _finals(baseline, metric))
                out.append(Comparison(group.gid, metric, welch, "t"))
    for family in ("t", "randomisation"):
        members = [c for c in out if c.family == family]
        for c, p in zip(members, stats.holm([c.result.pvalue for c in members]), strict=True):
            c.p_holm = p
    return out


COMPARISON_COLUMNS = ("group", "metric", "diff", "test", "p", "p_holm")


def comparison_rows(comparisons: Sequence[Comparison]) -> list[dict]:
    """Rows of the comparison table (:data:`COMPARISON_COLUMNS`); NaN p-values become None."""

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else value

    return [
        {"group": c.group, "metric": c.metric, "diff": clean(c.result.diff),
         "test": c.result.method, "p": clean(c.result.pvalue), "p_holm": clean(c.p_holm)}
        for c in comparisons
    ]  # fmt: skip
