"""End to end: ``capreolus-opt sweep`` on the smoke config trains real runs into FileStorage,
SQLite and (when CAPREOLUS_TEST_POSTGRES_URL is set) PostgreSQL observers; compare, diff and plot
then read them back through the full CLI.

One sweep (three processes: two good points and one whose value gin accepts but training
rejects) serves every test in this module, to keep the file's runtime down.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from capreolus_opt.analysis.plot import plot_runs
from capreolus_opt.cli import main as cli_main
from capreolus_opt.records.load import load_runs

# One worker runs the module, so the shared sweep trains once under xdist (--dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("runs_end_to_end")]
REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("CAPREOLUS_TEST_POSTGRES_URL")
LRS = (1e-3, 3e-4)
SMOKE = ["train.num_steps = 2", "train.eval_every = 2", "train.checkpoint_every = 2",
         "train.metrics_every = 1"]  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    sources = [f"file://{tmp / 'runs'}", f"sqlite:///{tmp / 'runs.db'}"]
    if POSTGRES_URL:
        sources.append(POSTGRES_URL)
    grid = "AdamMultilr.learning_rate=[" + ", ".join(map(repr, LRS)) + ", 'fast']"
    argv = [sys.executable, "-m", "capreolus_opt.cli", "sweep", "gin_configs/smoke.gin",
            "--grid", grid, "--parallel", "3", "--workdir_root", str(tmp / "wd")]  # fmt: skip
    for binding in SMOKE:
        argv += ["--gin_param", binding]
    for url in sources:
        argv += ["--observer", url]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=540, check=False)
    uuids = re.findall(r"\] ok: run ([0-9a-f]{32}):", proc.stdout)
    return proc, sources, uuids, tmp


def test_sweep_runs_every_point_and_reports_the_failed_one(sweep):
    proc, _, uuids, _ = sweep
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(uuids) == 2, proc.stdout + proc.stderr
    assert re.search(r"\] FAILED \(exit \d+\): .*learning_rate = 'fast'", proc.stdout)
    assert "2 of 3 points succeeded" in proc.stdout
    table = proc.stdout.split("points succeeded\n", 1)[1].splitlines()
    assert table[0].split()[:4] == ["run", "status", "duration_s", "AdamMultilr.learning_rate"]
    rows = {line.split()[0]: line.split() for line in table[2:]}
    # The failed point's run was recorded as FAILED (train got as far as printing its UUID).
    failed = re.findall(r"\] FAILED \(exit \d+\): run ([0-9a-f]{32}):", proc.stdout)
    assert set(rows) == {u[:8] for u in [*uuids, *failed]}
    assert sorted(float(rows[u[:8]][3]) for u in uuids) == sorted(LRS)
    assert all(rows[u[:8]][1] == "COMPLETED" for u in uuids)
    assert all(rows[u[:8]][1:4] == ["FAILED", rows[u[:8]][2], "fast"] for u in failed)


def test_runs_are_merged_across_observers_with_identical_series(sweep):
    _, sources, uuids, _ = sweep
    runs = [r for r in load_runs(*sources) if r.run_uuid in uuids]
    assert len(runs) == 2
    for run in runs:
        assert run.status == "COMPLETED"
        assert len(run.sources) == len(sources)
        assert run.hparams["AdamMultilr.learning_rate"] in LRS
        assert {"train/loss", "eval/mrr@10"} <= set(run.metrics)
        assert any(name.startswith("group/") for name in run.metrics)
        assert run.group_table and {"variable", "group"} <= set(run.group_table[0])
        # The result dict (final evaluation) equals the last eval/ point.
        for key, value in run.result.items():
            assert run.metrics[f"eval/{key}"].final == pytest.approx(value)
    per_source = [{r.run_uuid: r for r in load_runs(s)} for s in sources]
    for uuid in uuids:
        first = per_source[0][uuid]
        for other in per_source[1:]:
            assert set(other[uuid].metrics) == set(first.metrics)
            for name, series in first.metrics.items():
                np.testing.assert_array_equal(other[uuid].metrics[name].steps, series.steps)
                np.testing.assert_allclose(other[uuid].metrics[name].values, series.values)


def test_compare_diff_plot_through_the_cli(sweep, capsys):
    _, sources, uuids, tmp = sweep
    file_source = sources[0]
    assert cli_main(["compare", file_source, sources[1], "--format", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["run"] in uuids]
    assert len(rows) == 2
    runs = {r.run_uuid: r for r in load_runs(file_source)}
    for row in rows:
        run = runs[row["run"]]
        loss = np.asarray(run.metrics["train/loss"].values, dtype=np.float64)
        assert row["train/loss:best"] == pytest.approx(loss.min())
        assert row["train/loss:final"] == pytest.approx(loss[-1])

    assert cli_main(["diff", uuids[0][:10], uuids[1], "--source", sources[-1]]) == 0
    out = capsys.readouterr().out
    lr_line = next(x for x in out.splitlines() if x.startswith("AdamMultilr.learning_rate"))
    lrs = {uuid: runs[uuid].hparams["AdamMultilr.learning_rate"] for uuid in uuids}
    assert [float(v) for v in lr_line.split()[1:]] == [lrs[uuids[0]], lrs[uuids[1]]]
    assert "== metrics ==" in out and "train/loss" in out

    png = tmp / "sweep.png"
    argv = ["plot", file_source, "--metric", "train/loss", "--metric", "group/*/lr", "-o", str(png)]
    assert cli_main(argv) == 0
    import matplotlib.image

    assert matplotlib.image.imread(str(png)).shape[2] in (3, 4)
    fig = plot_runs([runs[u] for u in uuids], ["train/loss", "group/*/lr"])
    assert len(fig.axes) >= 2
    assert all(len(ax.get_lines()) == 2 for ax in fig.axes)


def test_real_train_into_mongomock_and_file_is_one_run(tmp_path, monkeypatch, capsys):
    """``train`` in-process with pymongo patched to mongomock (no MongoDB server is available)."""
    mongomock = pytest.importorskip("mongomock")
    gridfs_support = pytest.importorskip("mongomock.gridfs")
    from capreolus_opt.commands import runs as runs_cli

    gridfs_support.enable_gridfs_integration()
    monkeypatch.chdir(REPO)  # smoke.gin includes quickstart.gin relative to the repo root
    mongo_url = "mongodb://localhost:27017/e2e"
    folder = f"file://{tmp_path / 'runs'}"
    with mongomock.patch(servers=(("localhost", 27017),)):
        import pymongo

        argv = ["train", "gin_configs/smoke.gin", "--workdir", str(tmp_path / "wd"),
                "--observer", folder, "--observer", mongo_url]  # fmt: skip
        for binding in SMOKE:
            argv += ["--gin_param", binding]
        assert cli_main(argv) == 0
        (uuid,) = re.findall(r"^run ([0-9a-f]{32}) COMPLETED", capsys.readouterr().out, re.M)
        client = pymongo.MongoClient(mongo_url)  # mongomock: the same in-memory server
        monkeypatch.setattr(runs_cli, "MONGO_CLIENT_FACTORY", lambda url: client)
        assert cli_main(["compare", folder, mongo_url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run"] for r in rows] == [uuid] and rows[0]["status"] == "COMPLETED"
    runs = load_runs(folder, mongo_url, mongo_client_factory=lambda url: client)
    (run,) = runs
    assert run.sources == [str(tmp_path / "runs"), mongo_url]
    loss = run.metrics["train/loss"]
    assert rows[0]["train/loss:final"] == pytest.approx(loss.values[-1])
    assert rows[0]["train/loss:best"] == pytest.approx(min(loss.values))
