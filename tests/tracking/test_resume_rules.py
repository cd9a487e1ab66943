"""A finished run is final, a resumed run keeps its bindings, and one UUID names one record.

In-process on the TensorFlow-free fake backend (tests/tracking/fake_backend.py).
"""

from __future__ import annotations

import json
import shutil

from capreolus_opt.records.load import load_runs
from tests.tracking.tracking_helpers import file_runs, train, write_gin


def _info(run_dir) -> dict:
    return json.loads((run_dir / "info.json").read_text())


def test_a_completed_run_is_continued_only_with_more_steps(in_tmp, capsys):
    gin = write_gin(in_tmp / "a.gin", steps=4)
    assert train([gin]) == 0
    (first,) = file_runs(in_tmp / "runs")
    uuid = _info(first)["run_uuid"]
    capsys.readouterr()
    for more in ([], ["--gin_param", "train.steps = 4"], ["--gin_param", "train.steps = 3"]):
        assert train(["--resume", uuid, *more]) == 2
        err = capsys.readouterr().err
        assert f"run {uuid} is COMPLETED" in err and "'train.steps = N' with N > 4" in err
    assert len(file_runs(in_tmp / "runs")) == 1  # nothing recorded
    assert train(["--resume", uuid, "--gin_param", "train.steps = 6"]) == 0
    second = file_runs(in_tmp / "runs")[1]
    assert _info(second)["continued_from"] == uuid
    assert _info(second)["resumed_from"] == uuid
    assert json.loads((second / "metrics.json").read_text())["train/loss"]["steps"] == [5, 6]
    (run,) = [r for r in load_runs("runs") if r.run_uuid == _info(second)["run_uuid"]]
    assert run.continued_from == uuid


def test_changing_a_binding_on_resume_is_refused_unless_it_may_change(in_tmp, capsys):
    gin = write_gin(in_tmp / "a.gin", steps=6, ckpt_every=2)
    assert train([gin, "--gin_param", "train.interrupt_at = 3"]) == 130
    (first,) = file_runs(in_tmp / "runs")
    uuid = _info(first)["run_uuid"]
    capsys.readouterr()
    assert train(["--resume", uuid, "--gin_param", "train.ckpt_every = 3"]) == 2
    err = capsys.readouterr().err
    assert "train.ckpt_every would change from 2 to 3" in err
    assert train(["--resume", uuid, "--seed", "5"]) == 2
    assert "train.seed would change from 0 to 5" in capsys.readouterr().err
    assert len(file_runs(in_tmp / "runs")) == 1
    # The fault knob and the step count may change (the backend's RESUME_MAY_CHANGE).
    assert train(["--resume", uuid, "--gin_param", "train.interrupt_at = 0"]) == 0
    assert "continued_from" not in _info(file_runs(in_tmp / "runs")[1])  # it was not finished


def test_the_resume_allow_list_is_in_the_readme():
    from pathlib import Path

    from capreolus_opt.tracking.run import RESUME_MAY_CHANGE

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in RESUME_MAY_CHANGE)


def test_two_records_with_one_uuid_are_an_error_naming_both(in_tmp):
    gin = write_gin(in_tmp / "a.gin", steps=2)
    assert train([gin, "--observer", "file://a"]) == 0
    (run_a,) = file_runs(in_tmp / "a")
    uuid = _info(run_a)["run_uuid"]
    # A copy of the record in another store is the same run: merged, no problem.
    shutil.copytree(in_tmp / "a", in_tmp / "copy")
    runs = load_runs("a", "copy")
    assert [r.run_uuid for r in runs] == [uuid] and not runs.problems
    # Another record in the same store claiming that UUID: neither is shown, both are named.
    shutil.copytree(run_a, in_tmp / "a" / "7")
    runs = load_runs("a")
    assert [r.run_uuid for r in runs] == []
    (problem,) = runs.problems
    assert f"run_uuid {uuid} is also recorded at" in str(problem)
    assert "(id 1)" in str(problem) and "(id 7)" in str(problem)
    # A record elsewhere with other hyperparameters under the same UUID.
    config = json.loads((in_tmp / "copy" / "1" / "config.json").read_text())
    config["hparams"] = [["train.steps", 99]]
    (in_tmp / "copy" / "1" / "config.json").write_text(json.dumps(config))
    shutil.rmtree(in_tmp / "a" / "7")
    runs = load_runs("a", "copy")
    assert not list(runs) and "different hyperparameters" in str(runs.problems[0])
