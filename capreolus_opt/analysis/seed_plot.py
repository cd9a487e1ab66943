"""``plot --group-by``: one line per group of runs (the mean over its seeds) with a band.

At each logged step the group's line is the mean over the runs that logged that step, and the
band is ± one sample standard deviation (``band="std"``) or the 95% Student-t interval of the
mean (``band="ci"``, ``t_{0.975, n-1} · s / √n``); steps logged by a single run get no band.
Labels are the settings that differ between the groups plus ``n``. The legend sits below the
panels (shared by all of them), never over the curves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from capreolus_opt.analysis.seed_groups import Group

BANDS = ("std", "ci", "none")


def group_curve(group: Group, metric: str, band: str = "std") -> tuple[np.ndarray, ...] | None:
    """``(steps, mean, low, high)`` of ``metric`` over the group's runs; None when no run has it.

    ``low``/``high`` equal ``mean`` where fewer than two runs logged the step.
    """
    if band not in BANDS:
        raise ValueError(f"band {band!r} is not one of {BANDS}")
    series = [run.metrics.get(metric) for run in group.runs]
    series = [s for s in series if s is not None and len(s)]
    if not series:
        return None
    steps = np.unique(np.concatenate([np.asarray(s.steps, dtype=np.float64) for s in series]))
    values = np.full((len(series), steps.size), np.nan)
    for row, s in enumerate(series):
        # The last point logged at a step wins, as MetricSeries.final.
        values[row, np.searchsorted(steps, np.asarray(s.steps, dtype=np.float64))] = s.values
    present = ~np.isnan(values)
    count = present.sum(axis=0)
    total = np.where(present, values, 0.0).sum(axis=0)
    mean = total / np.maximum(count, 1)
    sq = np.where(present, (values - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(sq / np.maximum(count - 1, 1))
    half = np.zeros_like(mean)
    many = count >= 2
    if band == "std":
        half[many] = std[many]
    elif band == "ci":
        from scipy.special import stdtrit

        half[many] = stdtrit(count[many] - 1, 0.975) * std[many] / np.sqrt(count[many])
    return steps, mean, mean - half, mean + half


def add_outside_legend(fig: Any, axes: Sequence[Any]) -> None:
    """One legend for the whole figure, below the panels (constrained layout makes room)."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        # An entry at fontsize "small" is ~0.064 in per character plus ~0.6 in of line and
        # padding (measured at 90 dpi): as many columns as fit the figure's width, at most 4.
        entry = 0.064 * max(map(len, handles)) + 0.6
        ncols = max(1, min(len(handles), 4, int(fig.get_figwidth() // entry)))
        ncols = math.ceil(len(handles) / math.ceil(len(handles) / ncols))  # even rows: 4 -> 2x2
        fig.legend(
            list(handles.values()), list(handles), loc="outside lower center",
            ncols=ncols, fontsize="small", frameon=False,
        )  # fmt: skip


def plot_groups(
    groups: Sequence[Group],
    names: Sequence[str],
    output: str | None = None,
    *,
    band: str = "std",
    columns: int = 2,
) -> Any:
    """One panel per metric in ``names``, one mean line (and band) per group; save to ``output``.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(columns, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(5.5 * ncols, 3.6 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    colors = [f"C{i % 10}" for i in range(len(groups))]
    axes = []
    for index, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        axes.append(ax)
        for group, color in zip(groups, colors, strict=True):
            curve = group_curve(group, name, band)
            if curve is None:
                continue
            steps, mean, low, high = curve
            # Markers when points are few: an eval logged once is a single point, no line.
            marker = "o" if steps.size <= 20 else None
            label = f"{group.label} (n={len(group.runs)})"
            ax.plot(steps, mean, color=color, label=label, marker=marker, markersize=4)
            if band == "none" or not np.any(high > low):
                continue
            if steps.size == 1:
                ax.errorbar(steps, mean, yerr=[mean - low, high - mean], color=color, capsize=4)
            else:
                ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    add_outside_legend(fig, axes)
    if output is not None:
        fig.savefig(output, dpi=90)
    return fig
