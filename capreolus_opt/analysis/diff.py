"""``diff``: what differs between two runs — hyperparameters, gin files, group table, metrics.

A run is named by its UUID or any unique prefix of it (``compare`` prints 8-character prefixes),
looked up among the runs of the given sources; a run stored in several observers is one run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capreolus_opt.analysis.compare import render
from capreolus_opt.records.record import Run

_UNSET = "(unset)"


def find_run(runs: Sequence[Run], ref: str) -> Run:
    """The run whose UUID is ``ref`` or starts with it.

    Raises:
        ValueError: naming ``ref`` when no run or several runs match.
    """
    ref = ref.strip().lower().replace("-", "")
    if not ref:
        raise ValueError("a run reference must be a UUID or a non-empty prefix of one")
    matches = [run for run in runs if run.run_uuid.lower().startswith(ref)]
    exact = [run for run in matches if run.run_uuid.lower() == ref]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ValueError(f"no run with UUID or prefix {ref!r} among {len(runs)} loaded runs")
    ids = ", ".join(run.short_id for run in matches)
    raise ValueError(f"run prefix {ref!r} is ambiguous: it matches {ids}; give more characters")


def hparam_differences(a: Run, b: Run) -> list[tuple[str, Any, Any]]:
    """``(name, value_a, value_b)`` for every hyperparameter that differs; ``(unset)`` if absent."""
    names = dict.fromkeys([*a.hparams, *b.hparams])
    out = []
    for name in names:
        va, vb = a.hparams.get(name, _UNSET), b.hparams.get(name, _UNSET)
        if va != vb:
            out.append((name, va, vb))
    return out


def group_table_differences(a: Run, b: Run) -> list[tuple[str, str, Any, Any]]:
    """``(variable, field, value_a, value_b)`` for each group-table field that differs.

    Rows are matched by ``variable``; a variable present in only one run shows ``(absent)``.
    """
    rows_a = {str(r.get("variable")): r for r in a.group_table}
    rows_b = {str(r.get("variable")): r for r in b.group_table}
    out = []
    for var in dict.fromkeys([*rows_a, *rows_b]):
        ra, rb = rows_a.get(var), rows_b.get(var)
        if ra is None or rb is None:
            out.append((var, "row", "(absent)" if ra is None else "present",
                        "(absent)" if rb is None else "present"))  # fmt: skip
            continue
        for field in dict.fromkeys([*ra, *rb]):
            if field != "variable" and ra.get(field) != rb.get(field):
                out.append((var, field, ra.get(field, _UNSET), rb.get(field, _UNSET)))
    return out


def group_totals(run: Run) -> dict[str, tuple[int, int]]:
    """``{group: (n_tensors, n_params)}`` from the run's group table."""
    totals: dict[str, tuple[int, int]] = {}
    for row in run.group_table:
        n, p = totals.get(str(row.get("group")), (0, 0))
        params = row.get("params")
        totals[str(row.get("group"))] = (n + 1, p + (params if isinstance(params, int) else 0))
    return totals


def render_diff(a: Run, b: Run, metrics: Sequence[str]) -> str:
    """The human-readable diff report: four sections of aligned tables."""
    ida, idb = f"A ({a.short_id})", f"B ({b.short_id})"
    parts = ["== runs ==\n"]
    overview = [
        ("uuid", a.run_uuid, b.run_uuid),
        ("status", a.status, b.status),
        ("duration_s", a.duration, b.duration),
        ("seed", a.seed, b.seed),
        ("sources", ", ".join(a.sources), ", ".join(b.sources)),
        ("gin_files", ", ".join(a.gin_files), ", ".join(b.gin_files)),
    ]
    if a.resumed_from or b.resumed_from:
        overview.append(("resumed_from", a.resumed_from, b.resumed_from))
    parts.append(_table(["field", ida, idb], overview))

    hdiff = hparam_differences(a, b)
    parts.append(f"\n== hyperparameters: {len(hdiff)} differ ==\n")
    if hdiff:
        parts.append(_table(["hyperparameter", ida, idb], hdiff))

    gdiff = group_table_differences(a, b)
    parts.append(f"\n== group table: {len(gdiff)} differences ==\n")
    if gdiff:
        parts.append(_table(["variable", "field", ida, idb], gdiff))
    ta, tb = group_totals(a), group_totals(b)
    totals = [
        (g, *(f"{n} tensors / {p} params" if (n, p) != (0, 0) else "-"
              for n, p in (ta.get(g, (0, 0)), tb.get(g, (0, 0)))))
        for g in dict.fromkeys([*ta, *tb])
    ]  # fmt: skip
    if totals and ta != tb:
        parts.append(_table(["group", ida, idb], totals))

    parts.append("\n== metrics ==\n")
    rows = [(m, a.final(m), b.final(m), a.best(m), b.best(m)) for m in metrics]
    parts.append(_table(["metric", "A final", "B final", "A best", "B best"], rows))
    return "".join(parts)


def _table(columns: list[str], rows: Sequence[Sequence[Any]]) -> str:
    keyed = [dict(zip(columns, row, strict=True)) for row in rows]
    text = render(columns, keyed, "table")
    # render() shortens only a column called "run"; none here, so values print in full.
    return text if rows else text + "(none)\n"
