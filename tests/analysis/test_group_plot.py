"""``plot --group-by``: 12 runs in 4 groups stay readable (legend outside, bands, short labels)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from scipy import stats as sps

from capreolus_opt.analysis import plot
from capreolus_opt.analysis import seed_groups as groups
from capreolus_opt.analysis import seed_plot as group_plot
from capreolus_opt.records.record import MetricSeries, build_run

STEPS = list(range(0, 200, 4))
SETTINGS = [(1e-3, 0), (1e-3, 100), (3e-4, 0), (3e-4, 100)]  # lr, warmup


def _run(lr: float, warmup: int, seed: int):
    rng = np.random.default_rng(seed * 7 + int(lr * 1e4) + warmup)
    steps = np.array(STEPS, dtype=float)
    loss = 1.0 / (1.0 + lr * 20 * steps) + rng.normal(0, 0.02, steps.size) + warmup * 1e-3
    mrr = 0.9 - 0.4 * np.exp(-lr * 10 * steps) + rng.normal(0, 0.01, steps.size)
    hparams = [["AdamMultilr.learning_rate", lr], ["LinearWarmup.warmup_steps", warmup],
               ["RerankingTask.hidden_dim", 16], ["train.seed", seed]]  # fmt: skip
    return build_run(
        source="memory", sacred_id=seed, status="COMPLETED", start_time=None, stop_time=None,
        config={"hparams": hparams, "seed": seed}, info={"run_uuid": uuid.uuid4().hex},
        result={}, metrics={
            "train/loss": MetricSeries(STEPS, loss.tolist()),
            "eval/mrr@10": MetricSeries(STEPS[::5], mrr[::5].tolist()),
        },
    )  # fmt: skip


@pytest.fixture
def twelve_runs():
    return [_run(lr, w, seed) for lr, w in SETTINGS for seed in range(3)]


def test_twelve_runs_in_four_groups_keep_the_axes_large(twelve_runs, tmp_path):
    found = groups.group_runs(twelve_runs)
    assert [len(g.runs) for g in found] == [3, 3, 3, 3]
    out = tmp_path / "groups.png"
    fig = group_plot.plot_groups(found, ["train/loss", "eval/mrr@10"], str(out), band="std")
    assert out.stat().st_size > 10_000
    fig.canvas.draw()
    panels = [ax.get_position() for ax in fig.axes]
    share = sum(p.width * p.height for p in panels)
    assert share > 0.5, f"the panels cover only {share:.0%} of the figure"
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    # Labels: the two settings that differ, short names, n; never the constants or the seed.
    assert texts == [
        f"learning_rate={lr:g}, warmup_steps={w} (n=3)" for lr, w in SETTINGS
    ]  # fmt: skip
    # The legend lies outside every panel.
    box = legend.get_window_extent().transformed(fig.transFigure.inverted())
    assert all(box.y1 <= p.y0 + 1e-6 for p in panels)
    assert box.x0 >= 0 and box.x1 <= 1 and box.y0 >= 0, "the legend is clipped"
    for ax in fig.axes:
        assert len(ax.lines) == 4
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 4


def test_group_curve_mean_and_bands_match_numpy(twelve_runs):
    group = groups.group_runs(twelve_runs)[0]
    matrix = np.array([r.metrics["train/loss"].values for r in group.runs])
    steps, mean, low, high = group_plot.group_curve(group, "train/loss", "std")
    np.testing.assert_array_equal(steps, STEPS)
    np.testing.assert_allclose(mean, matrix.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(high - mean, matrix.std(axis=0, ddof=1), rtol=1e-12)
    _, _, low_ci, high_ci = group_plot.group_curve(group, "train/loss", "ci")
    half = sps.t.ppf(0.975, 2) * sps.sem(matrix, axis=0)
    np.testing.assert_allclose(high_ci - mean, half, rtol=1e-12)
    np.testing.assert_allclose(mean - low_ci, half, rtol=1e-12)
    with pytest.raises(ValueError, match="band 'iqr' is not one of"):
        group_plot.group_curve(group, "train/loss", "iqr")


def test_uneven_steps_leave_no_band_where_one_run_logged(twelve_runs):
    group = groups.group_runs(twelve_runs)[0]
    group.runs[0].metrics["train/loss"] = MetricSeries([*STEPS, 400], [0.1] * (len(STEPS) + 1))
    steps, mean, low, high = group_plot.group_curve(group, "train/loss", "std")
    assert steps[-1] == 400 and mean[-1] == 0.1 and low[-1] == high[-1] == 0.1


def test_a_metric_logged_once_is_drawn_as_points_with_error_bars(twelve_runs, tmp_path):
    for run in twelve_runs:
        series = run.metrics["eval/mrr@10"]
        run.metrics["eval/mrr@10"] = type(series)([series.steps[-1]], [series.values[-1]])
    found = groups.group_runs(twelve_runs)
    fig = group_plot.plot_groups(found, ["eval/mrr@10"], str(tmp_path / "once.png"))
    (ax,) = fig.axes
    lines = [line for line in ax.lines if line.get_label() and not line.get_label().startswith("_")]
    assert len(lines) == 4 and all(line.get_marker() == "o" for line in lines)
    assert len(ax.containers) == 4  # one error bar (the std band) per group


def test_per_run_plot_puts_the_legend_outside_too(twelve_runs, tmp_path):
    fig = plot.plot_runs(twelve_runs[:6], ["train/loss"], str(tmp_path / "runs.png"))
    fig.canvas.draw()
    (ax,) = fig.axes
    assert ax.get_legend() is None and len(fig.legends) == 1
    box = fig.legends[0].get_window_extent().transformed(fig.transFigure.inverted())
    assert box.y1 <= ax.get_position().y0 + 1e-6
    assert box.x0 >= 0 and box.x1 <= 1 and box.y0 >= 0, "the legend is clipped"


def test_groups_do_not_depend_on_the_order_a_store_lists_runs_in():
    """Concurrent runs get Sacred ids in a different order in each observer, so stores list them
    differently; grouping orders runs by start time (then UUID) and so numbers groups the same."""
    import dataclasses
    import datetime as dt
    import random

    t0 = dt.datetime(2026, 1, 1, 12, 0, 0)
    runs = []
    for i, (lr, seed) in enumerate([(3e-3, 0), (1e-3, 0), (3e-3, 1), (1e-3, 1)]):
        base = _run(lr, 0, seed)
        # Runs 0 and 1 start in the same microsecond: their UUIDs decide.
        runs.append(dataclasses.replace(base, start_time=t0 + dt.timedelta(seconds=max(i - 1, 0))))
    expected = [[r.run_uuid for r in g.runs] for g in groups.group_runs(runs)]
    first = min(runs[:2], key=lambda r: r.run_uuid)
    assert expected[0][0] == first.run_uuid
    for _ in range(10):
        shuffled = random.sample(runs, len(runs))
        found = groups.group_runs(shuffled)
        assert [[r.run_uuid for r in g.runs] for g in found] == expected
        assert [g.gid for g in found] == ["g1", "g2"]
