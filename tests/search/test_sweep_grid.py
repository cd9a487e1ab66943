"""sweep: grid parsing (gin literals), point expansion, dry-run commands, run selection."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path

import pytest

from capreolus_opt.launchers import sweep
from capreolus_opt.records.record import Run
from capreolus_opt.search import grid
from tests.recorded_runs import run_cli


def test_parse_grid_literals_and_references():
    assert grid.parse_grid("AdamMultilr.learning_rate=[1e-3, 3e-4]") == (
        "AdamMultilr.learning_rate", ["1e-3", "3e-4"],
    )  # fmt: skip
    name, values = grid.parse_grid("scope/Model.sizes = [[1, 2], (3, 4), 'a,b', @relu, %WIDTH]")
    assert name == "scope/Model.sizes"
    assert values == ["[1, 2]", "(3, 4)", "'a,b'", "@relu", "%WIDTH"]
    assert grid.parse_grid("train.steps=5") == ("train.steps", ["5"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("learning_rate=[1e-3]", "'learning_rate'"),  # no Configurable.
        ("AdamMultilr.learning_rate=[]", "gives no values"),
        ("AdamMultilr.learning_rate=[1e-3, adam]", "'adam' is not a gin literal"),
        ("AdamMultilr.learning_rate=[1e-3, 'x]", "unterminated"),
        ("AdamMultilr.learning_rate", "not of the form"),
    ],
)
def test_parse_grid_rejects_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        grid.parse_grid(spec)


def test_grid_points_are_the_cartesian_product_in_order():
    points = grid.grid_points(["A.x=[1, 2]", "B.y=['p', 'q', 'r']"])
    assert points == [[f"A.x = {x}", f"B.y = '{y}'"] for x in (1, 2) for y in "pqr"]
    with pytest.raises(ValueError, match="twice"):
        grid.grid_points(["A.x=[1]", "A.x=[2]"])


def test_dry_run_prints_one_train_command_per_point(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the repo root holds gin_configs/
    argv = ["sweep", "gin_configs/smoke.gin", "--grid", "AdamMultilr.learning_rate=[1e-3, 3e-4]",
            "--gin_param", "train.steps = 2", "--observer", "sqlite:///s.db",
            "--dry-run"]  # fmt: skip
    assert run_cli(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line, lr in zip(lines, ["1e-3", "3e-4"], strict=True):
        assert shlex.split(line) == [
            'CAPREOLUS_OPT_OBSERVERS=["sqlite:///s.db"]',  # observers travel in the environment
            sys.executable, "-m", "capreolus_opt.cli", "train", "gin_configs/smoke.gin",
            "--gin_param", "train.steps = 2",
            "--gin_param", f"AdamMultilr.learning_rate = {lr}",
        ]  # fmt: skip


def test_bad_grid_parallel_observer_or_config_exit_2(tmp_path, capsys):
    config = tmp_path / "c.gin"
    config.write_text("")
    assert run_cli(["sweep", str(config), "--grid", "oops", "--dry-run"]) == 2
    assert "'oops'" in capsys.readouterr().err
    assert run_cli(["sweep", str(config), "--grid", "A.x=[1]", "--parallel", "0"]) == 2
    assert run_cli(["sweep", str(config), "--grid", "A.x=[1]", "--observer", "ftp://h/x"]) == 2
    assert "'ftp'" in capsys.readouterr().err
    assert run_cli(["sweep", str(tmp_path / "no.gin"), "--grid", "A.x=[1]"]) == 2
    assert "no.gin" in capsys.readouterr().err


@pytest.mark.slow
def test_failed_points_do_not_stop_the_others():
    code = "import sys; sys.exit(int(sys.argv[1]))"
    argvs = [[sys.executable, "-c", code, rc] for rc in ("0", "3", "0")]
    seen = []
    results = sweep.run_points(
        argvs, [["p0"], ["p1"], ["p2"]], 2, on_done=lambda i, r: seen.append(i)
    )
    assert [r.returncode for r in results] == [0, 3, 0]
    assert sorted(seen) == [0, 1, 2]
    broken = sweep.run_points([["/nonexistent/binary"]], [["p"]], 1)
    assert broken[0].returncode == -1 and "could not start" in broken[0].output


def _run(start: dt.datetime, bindings: list[str]) -> Run:
    return Run(run_uuid=str(id(bindings)), status="COMPLETED", start_time=start, stop_time=None,
               hparams={}, gin_files=[], gin_bindings=bindings, seed=0, group_table=[],
               metrics={}, result={})  # fmt: skip


def test_sweep_runs_selects_by_start_time_and_bindings():
    started = dt.datetime(2026, 1, 1, 12)
    points = [["A.x = 1", "B.y = 'p'"], ["A.x = 2", "B.y = 'p'"]]
    mine = _run(started + dt.timedelta(seconds=5), ["train.steps=2", "A.x=1", "B.y = 'p'"])
    older = _run(started - dt.timedelta(seconds=5), ["A.x = 1", "B.y = 'p'"])
    other = _run(started + dt.timedelta(seconds=5), ["A.x = 3", "B.y = 'p'"])
    assert sweep.sweep_runs([mine, older, other], points, started) == [mine]
    assert sweep.sweep_runs([mine, older, other], points, started, [other.run_uuid]) == [
        mine, other,
    ]  # fmt: skip


def test_a_point_reports_its_run_as_json_not_as_text(tmp_path):
    from capreolus_opt.tracking.run import RunOutcome

    outcome = RunOutcome("0bb15d4b39bf4e1886dbb0176088aa73", "FAILED", 1, message="Traceback")
    (tmp_path / "0.json").write_text(outcome.to_json())
    (tmp_path / "1.json").write_text('{"run_uuid": null, "exit_code": 2, "message": "bad"}')
    assert sweep.read_outcome(str(tmp_path / "0.json")) == outcome
    assert sweep.read_outcome(str(tmp_path / "1.json")) is None  # refused: nothing recorded
    assert sweep.read_outcome(str(tmp_path / "missing.json")) is None  # died before writing
    printed = "run 0bb15d4b39bf4e1886dbb0176088aa73 COMPLETED"  # text is no longer read
    assert sweep.PointResult(["A.x = 1"], 0, printed).run_uuid is None
    assert sweep.PointResult(["A.x = 1"], 1, "", outcome).run_uuid == outcome.run_uuid


def test_a_macro_in_capitals_is_a_grid_name():
    assert grid.parse_grid("ENCODER_LR=[1e-3, 3e-4]") == ("ENCODER_LR", ["1e-3", "3e-4"])
