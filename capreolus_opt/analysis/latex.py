"""Paper tables of grouped runs: LaTeX (booktabs) and Markdown.

One row per group (its differing settings, ``n``) and one column per metric holding
``mean ± std`` of the runs' final values. In each metric column the best mean (the maximum, or
the minimum for losses/errors, :func:`records.best_direction`) is bold. With a baseline, a
group's cell carries ``†`` when the first-kind test (paired t over queries, else Welch over
seeds) finds it different from the baseline at ``alpha`` after Holm's correction, and ``‡`` when
the paired randomisation test does; a footnote below the table says so, naming the tests, the
baseline and the number of comparisons. The LaTeX needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from capreolus_opt.analysis.seed_groups import Comparison, Group
from capreolus_opt.records.record import best_direction

MARKS = {"t": "†", "randomisation": "‡"}
_LATEX_MARKS = {"t": r"$^{\dagger}$", "randomisation": r"$^{\ddagger}$"}
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"


def _best(rows: Sequence[dict], metric: str) -> float | None:
    direction = best_direction(metric)
    means = [r[f"{metric}:mean"] for r in rows if r.get(f"{metric}:mean") is not None]
    if direction is None or not means:
        return None
    return min(means) if direction == "min" else max(means)


def _marks(comparisons: Sequence[Comparison], gid: str, metric: str, alpha: float) -> list[str]:
    return [
        c.family
        for c in comparisons
        if c.group == gid and c.metric == metric and c.p_holm == c.p_holm and c.p_holm < alpha
    ]


def _footnote(
    comparisons: Sequence[Comparison], baseline: Group | None, alpha: float, latex: bool
) -> str:
    pm = r"$\pm$" if latex else "±"
    text = (
        f"Mean {pm} sample standard deviation of the final value over the n runs (seeds) of "
        "each setting; the best mean of each metric is bold."
    )
    if baseline is None or not comparisons:
        return text
    label = latex_escape(baseline.label) if latex else baseline.label
    for family in ("t", "randomisation"):
        members = [c for c in comparisons if c.family == family]
        if not members:
            continue
        methods = sorted({c.result.method.split(" over ")[0] for c in members})
        mark = _LATEX_MARKS[family] if latex else MARKS[family]
        text += (
            f" {mark}: different from the baseline ({baseline.gid}: {label}) at p < {alpha:g}, "
            f"{' / '.join(methods)}, Holm-corrected over {len(members)} comparisons."
        )
    return text


def paper_table(
    groups: Sequence[Group],
    rows: Sequence[dict],
    metrics: Sequence[str],
    *,
    comparisons: Sequence[Comparison] = (),
    baseline: Group | None = None,
    alpha: float = 0.05,
    fmt: str = "latex",
) -> str:
    """Render ``rows`` (from :func:`groups.group_rows`) as a ``latex`` or ``markdown`` table."""
    if fmt not in ("latex", "markdown"):
        raise ValueError(f"paper table format {fmt!r} is not 'latex' or 'markdown'")
    latex = fmt == "latex"
    esc = latex_escape if latex else (lambda s: s.replace("|", r"\|"))
    bests = {m: _best(rows, m) for m in metrics}
    body = []
    for group, row in zip(groups, rows, strict=True):
        label = esc(group.label) + (" (baseline)" if group is baseline else "")
        cells = [label, str(row["n"])]
        for metric in metrics:
            mean, std = row.get(f"{metric}:mean"), row.get(f"{metric}:std")
            text = _number(mean)
            if mean is not None and mean == bests[metric]:
                text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
            if std is not None:
                text += (r" $\pm$ " if latex else " ± ") + _number(std)
            for family in _marks(comparisons, group.gid, metric, alpha):
                text += _LATEX_MARKS[family] if latex else f" {MARKS[family]}"
            cells.append(text)
        body.append(cells)
    header = ["Setting", "$n$" if latex else "n", *(esc(m) for m in metrics)]
    note = _footnote(comparisons, baseline, alpha, latex)
    if not latex:
        lines = ["| " + " | ".join(header) + " |", "|---|" + "--:|" * (len(header) - 1)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines) + f"\n\n{note}\n"
    lines = [
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"  \centering",
        r"  \begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"    \toprule",
        "    " + " & ".join(header) + r" \\",
        r"    \midrule",
        *("    " + " & ".join(cells) + r" \\" for cells in body),
        r"    \bottomrule",
        r"  \end{tabular}",
        r"  \par\smallskip",
        r"  {\footnotesize " + note + "}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"
