"""``plot``: metric curves of several runs overlaid, one panel per metric.

A glob such as ``group/*/grad_norm`` expands to one panel per group. Each run is one line per
panel, labelled by the hyperparameters that differ among the plotted runs (short names, e.g.
``learning_rate=0.001``), or by its 8-character id when nothing differs. Drawing uses
matplotlib's Agg canvas directly (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from capreolus_opt.analysis.compare import format_value, select_metrics
from capreolus_opt.analysis.seed_plot import add_outside_legend
from capreolus_opt.records.record import Run, differing_hparams


def run_labels(runs: Sequence[Run]) -> list[str]:
    """Legend label per run from its differing hyperparameters; unique across ``runs``."""
    params = differing_hparams(runs)
    leaves = [name.rsplit(".", 1)[-1] for name in params]
    # A leaf shared by two configurables (Adam.learning_rate, Schedule.learning_rate) stays full.
    shown = [
        leaf if leaves.count(leaf) == 1 else name for leaf, name in zip(leaves, params, strict=True)
    ]
    labels = []
    for run in runs:
        parts = [
            f"{label}={format_value(run.hparams[name]) if name in run.hparams else 'unset'}"
            for label, name in zip(shown, params, strict=True)
        ]
        labels.append(", ".join(parts) or run.short_id)
    return [
        f"{label} ({run.short_id})" if labels.count(label) > 1 else label
        for label, run in zip(labels, runs, strict=True)
    ]


def plot_metric_names(runs: Sequence[Run], metrics: Sequence[str]) -> list[str]:
    """The metric names ``metrics`` expands to that some run logged a series of.

    Raises:
        ValueError: when there is none.
    """
    names, _ = select_metrics(runs, metrics)
    names = [n for n in names if any(len(r.metrics.get(n, ())) for r in runs)]
    if not names:
        raise ValueError(f"metrics {list(metrics)} match no logged series of the {len(runs)} runs")
    return names


def plot_runs(
    runs: Sequence[Run], metrics: Sequence[str], output: str | None = None, *, columns: int = 2
) -> Any:
    """Draw one panel per (expanded) metric and save it to ``output`` when given.

    Returns:
        The ``matplotlib.figure.Figure`` (one ``Line2D`` per run that has the panel's metric).

    Raises:
        ValueError: when ``metrics`` matches none of the runs' series.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = plot_metric_names(runs, metrics)
    ncols = max(1, min(columns, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(5.5 * ncols, 3.6 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    labels = run_labels(runs)
    for index, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        for run, label in zip(runs, labels, strict=True):
            series = run.metrics.get(name)
            if series is None or not len(series):
                continue
            order = sorted(range(len(series.steps)), key=lambda i: series.steps[i])
            ax.plot(
                [series.steps[i] for i in order], [series.values[i] for i in order], label=label
            )
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    # Below the panels, shared: legends inside covered the curves with 3+ runs.
    add_outside_legend(fig, fig.axes)
    if output is not None:
        fig.savefig(output, dpi=90)
    return fig
