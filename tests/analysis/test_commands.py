"""compare / diff / plot through the CLI handlers, on fixture runs in three observers."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from capreolus_opt.analysis.plot import plot_runs
from capreolus_opt.commands import runs as runs_cli
from capreolus_opt.records.load import load_runs
from tests.recorded_runs import Spec, lr_specs, record_run, run_cli


@pytest.fixture
def three_stores(observers, monkeypatch):
    """Three runs (lr 1e-3, 3e-4, 1e-4) each written to file, SQLite and Mongo; a failed fourth
    run to the file store only."""
    monkeypatch.setattr(runs_cli, "MONGO_CLIENT_FACTORY", observers["mongo_factory"])
    specs = lr_specs()
    for spec in specs:
        record_run(
            spec, [observers["make_file"](), observers["make_sql"](), observers["make_mongo"]()]
        )
    failed = Spec(hparams=[["AdamMultilr.learning_rate", 3e-3], ["train.steps", 6]], fail=True)
    record_run(failed, [observers["make_file"]()])
    return specs, failed, [observers["file"], observers["sqlite"], observers["mongo"]]


def expected_summary(spec: Spec, metric: str) -> tuple[float, float]:
    steps, values = spec.curves()[metric]
    best = values.min() if metric.endswith("loss") else values.max()
    return float(values[np.argmax(steps)]), float(best)


def test_compare_json_has_one_row_per_run_and_only_differing_params(three_stores, capsys):
    specs, failed, sources = three_stores
    assert run_cli(["compare", *sources, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in rows] == [s.run_uuid for s in specs] + [failed.run_uuid]
    assert [r["status"] for r in rows] == ["COMPLETED"] * 3 + ["FAILED"]
    # train.steps is 6 everywhere: not a column; the learning rate differs: a column.
    assert "train.steps" not in rows[0]
    assert [r["AdamMultilr.learning_rate"] for r in rows] == [1e-3, 3e-4, 1e-4, 3e-3]
    assert set(rows[0]) == {
        "run", "status", "duration_s", "AdamMultilr.learning_rate",
        "eval/mrr@10:final", "eval/mrr@10:best", "train/loss:final", "train/loss:best",
    }  # fmt: skip
    for row, spec in zip(rows, [*specs, failed], strict=True):
        for metric in ("eval/mrr@10", "train/loss"):
            final, best = expected_summary(spec, metric)
            assert row[f"{metric}:final"] == pytest.approx(final, rel=1e-12)
            assert row[f"{metric}:best"] == pytest.approx(best, rel=1e-12)
        assert row["duration_s"] >= 0


def test_compare_filters_sort_and_globs(three_stores, capsys):
    specs, failed, sources = three_stores
    argv = ["compare", *sources, "--status", "completed", "--sort=-eval/mrr@10"]
    assert run_cli([*argv, "--metric", "eval/*", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    finals = np.array([expected_summary(s, "eval/mrr@10")[0] for s in specs])
    assert [r["run"] for r in rows] == [specs[i].run_uuid for i in np.argsort(-finals)]
    assert "train/loss:final" not in rows[0]

    assert run_cli(["compare", *sources, "--where", "learning_rate=3e-4", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in rows] == [specs[1].run_uuid]

    assert (
        run_cli(["compare", sources[0], "--metric", "group/*/grad_norm", "--format", "json"]) == 0
    )
    row = json.loads(capsys.readouterr().out)[0]
    # grad_norm = (i + 1) / step for group i: final at step 6; diagnostics have no "best".
    assert row["group/encoder/grad_norm:final"] == pytest.approx(1 / 6)
    assert row["group/head/grad_norm:final"] == pytest.approx(2 / 6)
    assert "group/head/grad_norm:best" not in row
    assert "eval/mrr@10:final" not in row


def test_compare_text_formats(three_stores, capsys):
    specs, failed, sources = three_stores
    assert run_cli(["compare", *sources]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["run", "status", "duration_s", "AdamMultilr.learning_rate"]
    assert set(lines[1]) <= {"-", " "}
    assert [line.split()[0] for line in lines[2:]] == [s.run_uuid[:8] for s in [*specs, failed]]
    assert lines[2].split()[3] == "0.001"
    assert run_cli(["compare", *sources, "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | status |") and lines[1].startswith("|---|")
    assert len(lines) == 2 + 4


def test_compare_bad_arguments_exit_2(three_stores, capsys):
    _, _, sources = three_stores
    assert run_cli(["compare", *sources, "--where", "momentum=0.9"]) == 2
    assert "'momentum'" in capsys.readouterr().err
    assert run_cli(["compare", *sources, "--sort", "nope"]) == 2
    assert run_cli(["compare", "ftp://x/y"]) == 2
    assert "'ftp'" in capsys.readouterr().err


def test_empty_and_unreadable_sources(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(["compare", str(empty)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"no runs found in {empty}" in captured.err
    broken = tmp_path / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "run.json").write_text("{not json")
    assert run_cli(["compare", str(broken)]) == 1
    assert "skipped:" in capsys.readouterr().err


def test_diff_shows_params_group_table_and_metrics(three_stores, capsys):
    specs, failed, sources = three_stores
    a, b = specs[0], specs[2]
    argv = ["diff", a.run_uuid[:6], b.run_uuid, "--source", sources[1], "--source", sources[2]]
    assert run_cli(argv) == 0
    out = capsys.readouterr().out
    assert "== hyperparameters: 1 differ ==" in out
    line = next(x for x in out.splitlines() if x.startswith("AdamMultilr.learning_rate"))
    assert line.split()[1:] == ["0.001", "0.0001"]
    # Both group-table rows change their lr: encoder lr = lr, head lr = 2 lr.
    rows = [x.split() for x in out.splitlines() if x.startswith(("encoder/kernel", "head/kernel"))]
    assert rows == [["encoder/kernel", "lr", "0.001", "0.0001"],
                    ["head/kernel", "lr", "0.002", "0.0002"]]  # fmt: skip
    metric = next(x for x in out.splitlines() if x.startswith("eval/mrr@10")).split()
    fa, ba = expected_summary(a, "eval/mrr@10")
    fb, bb = expected_summary(b, "eval/mrr@10")
    np.testing.assert_allclose([float(v) for v in metric[1:]], [fa, fb, ba, bb], rtol=1e-5)


def test_diff_unknown_or_ambiguous_run(three_stores, capsys):
    specs, _, sources = three_stores
    assert run_cli(["diff", "zzzz", specs[0].run_uuid, "--source", sources[0]]) == 2
    assert "'zzzz'" in capsys.readouterr().err
    assert run_cli(["diff", "", specs[0].run_uuid, "--source", sources[0]]) == 2


def test_plot_writes_png_with_one_line_per_run(three_stores, tmp_path, capsys):
    specs, failed, sources = three_stores
    out = tmp_path / "curves.png"
    argv = ["plot", *sources, "--metric", "train/loss", "--metric", "group/*/lr", "-o", str(out)]
    assert run_cli(argv) == 0
    assert "4 runs" in capsys.readouterr().out
    import matplotlib.image

    image = matplotlib.image.imread(str(out))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0  # not a blank canvas

    runs = load_runs(*sources, mongo_client_factory=runs_cli.MONGO_CLIENT_FACTORY)
    fig = plot_runs(runs, ["train/loss", "group/*/lr"])
    assert [ax.get_title() for ax in fig.axes] == [
        "train/loss",
        "group/encoder/lr",
        "group/head/lr",
    ]
    for ax in fig.axes:
        assert len(ax.get_lines()) == 4
        assert ax.get_legend() is None  # one shared legend below the panels
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["learning_rate=0.001", "learning_rate=0.0003",
                      "learning_rate=0.0001", "learning_rate=0.003"]  # fmt: skip
    loss = fig.axes[0].get_lines()[0]
    steps, values = specs[0].curves()["train/loss"]
    np.testing.assert_allclose(loss.get_xdata(), steps)
    np.testing.assert_allclose(loss.get_ydata(), values, rtol=1e-12)


def test_plot_unknown_metric_fails(three_stores, tmp_path, capsys):
    _, _, sources = three_stores
    out = tmp_path / "none.png"
    assert run_cli(["plot", sources[0], "--metric", "eval/bleu", "-o", str(out)]) == 1
    assert "eval/bleu" in capsys.readouterr().err and not out.exists()


def test_compare_vs_first_stage_shows_the_recorded_p_values_without_a_best_column():
    import argparse
    import datetime as dt

    from capreolus_opt.records.record import Run

    result = {
        "test/ndcg@10": 0.41, "test/model/ndcg@10": 0.30, "test/first_stage/ndcg@10": 0.36,
        "test/model/p_ttest": 0.012, "test/model/p_randomisation": 0.0103,
        "test/model/wins": 10.0, "test/model/losses": 25.0, "test/model/ties": 5.0,
        "test/interpolated/p_randomisation": 0.04, "dev/ndcg@10": 0.5,
    }  # fmt: skip
    run = Run(
        run_uuid="b" * 32, status="COMPLETED", start_time=dt.datetime(2026, 1, 1),
        stop_time=None, hparams={}, gin_files=[], gin_bindings=[], seed=0, group_table=[],
        metrics={}, result=result,
    )  # fmt: skip
    args = argparse.Namespace(
        where=[], status=[], metric=None, vs_first_stage=True, group_by=None, baseline=None,
        format="json", sort=None, alpha=0.05,
    )  # fmt: skip
    (row,) = json.loads(runs_cli._table_for([run], args))
    assert row["eval/test/model/p_randomisation:final"] == 0.0103
    assert row["eval/test/interpolated/p_randomisation:final"] == 0.04
    assert row["eval/test/model/p_ttest:final"] == 0.012
    assert row["eval/test/model/wins:final"] == 10 and row["eval/test/model/losses:final"] == 25
    assert row["eval/test/first_stage/ndcg@10:final"] == 0.36
    assert row["eval/test/model/ndcg@10:best"] == 0.30  # a metric keeps its best column
    assert not any(k.endswith(":best") and ("/p_" in k or "/wins" in k or "/losses" in k)
                   for k in row)  # fmt: skip
    assert "eval/dev/ndcg@10:final" not in row  # only the selection asked for
