"""--space parsing, grid = the sweep's grid, storage URL rules, and the PRUNED status label."""

from __future__ import annotations

import datetime as dt

import optuna
import pytest

from capreolus_opt.analysis import compare
from capreolus_opt.records import record as records
from capreolus_opt.search import grid, space
from capreolus_opt.search.storage import StorageError, check_storage_url, open_storage
from capreolus_opt.search.worker import make_grid_sampler


def test_ranges_and_lists_parse_into_dimensions():
    lr = space.parse_space("AdamMultilr.learning_rate=float(1e-5, 1e-3, log)")
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-5, 1e-3, True)
    layers = space.parse_space("RerankingTask.num_layers = int(1, 4)")
    assert (layers.kind, layers.low, layers.high, layers.log) == ("int", 1, 4, False)
    loss = space.parse_space("RerankingTask.loss=['softmax', 'pairwise_hinge']")
    assert loss.texts == ("'softmax'", "'pairwise_hinge'")
    macro = space.parse_space("ENCODER_LR=[1e-3, 3e-4, @foo]")
    assert macro.choices == [1e-3, 3e-4, "@foo"]  # numbers as numbers, the rest as gin text
    assert space.parse_space(lr.spec()) == lr and space.parse_space(layers.spec()) == layers


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("AdamMultilr.learning_rate=float(1e-3, 1e-5)", "LOW must be below HIGH"),
        ("A.x=float(0, 1, log)", "LOW > 0"),
        ("A.x=float(0, nope)", "'nope' is not a finite number"),
        ("A.x=int(0.5, 3)", "must be integers"),
        ("A.x=float(0, 1, cubic)", "float(LOW, HIGH, log)"),
        ("A.x=normal(0, 1)", "NAME=float(LOW, HIGH"),
        ("not a name=[1]", "'not a name'"),
        ("A.x=[1, 1]", "twice"),
        ("A.x=[oops]", "not a gin literal"),
    ],
)
def test_bad_specs_name_the_spec_and_what_was_expected(spec, message):
    with pytest.raises(ValueError, match="--(space|grid)") as info:
        space.parse_space(spec)
    assert message in str(info.value)


def test_a_binding_is_searched_once_and_at_least_one_is_given():
    with pytest.raises(ValueError, match="twice"):
        space.parse_spaces(["A.x=[1]", "A.x=float(0, 1)"])
    with pytest.raises(ValueError, match="at least one"):
        space.parse_spaces([])


def test_the_grid_sampler_visits_exactly_the_sweeps_grid():
    specs = ["A.x=[1, 2]", "B.y=['p', @q]"]
    dims = space.parse_spaces(specs)
    study = optuna.create_study(sampler=make_grid_sampler(dims, seed=0))
    seen = []
    for _ in range(space.grid_size(dims)):
        trial = study.ask()
        seen.append(space.suggest_bindings(trial, dims))
        study.tell(trial, 0.0)
    assert sorted(seen) == sorted(grid.grid_points(specs))  # each point once
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    with pytest.raises(ValueError, match="needs a list of values"):
        space.grid_search_space(space.parse_spaces(["A.x=float(0, 1)"]))


def test_suggestions_become_gin_bindings():
    dims = space.parse_spaces(["LR=float(1e-4, 1e-2, log)", "A.n=int(1, 3)", "A.s=['a', 'b']"])
    trial = optuna.trial.FixedTrial({"LR": 3e-3, "A.n": 2, "A.s": "'b'"})
    assert space.suggest_bindings(trial, dims) == ["LR = 0.003", "A.n = 2", "A.s = 'b'"]


def test_storage_urls(tmp_path):
    assert check_storage_url("postgresql://u:secret@db/optuna", parallel=True) == "postgresql"
    assert check_storage_url(f"journal://{tmp_path}/s.log", parallel=True) == "journal"
    assert check_storage_url("sqlite:///s.db", parallel=False) == "sqlite"
    with pytest.raises(StorageError, match="SQLite cannot serve parallel workers"):
        check_storage_url("sqlite:///s.db", parallel=True)
    with pytest.raises(StorageError, match="unsupported") as info:
        check_storage_url("redis://:hunter2@h/0", parallel=False)
    assert "hunter2" not in str(info.value)
    with pytest.raises(StorageError, match="names no database"):
        check_storage_url("postgresql://u@db", parallel=True)
    storage = open_storage(f"journal:///{tmp_path}/s.log")
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert (
        len(
            optuna.load_study(
                study_name="s", storage=open_storage(f"journal:///{tmp_path}/s.log")
            ).trials
        )
        == 2
    )


def _run(status, reason):
    return records.Run(
        run_uuid="a" * 32, status=status, start_time=dt.datetime(2026, 1, 1), stop_time=None,
        hparams={}, gin_files=[], gin_bindings=[], seed=0, group_table=[], metrics={},
        result={}, stopped_reason=reason,
    )  # fmt: skip


def test_compare_shows_a_pruned_run_as_pruned_and_filters_on_it():
    pruned, interrupted = _run("INTERRUPTED", "pruned"), _run("INTERRUPTED", None)
    assert compare.status_label(pruned) == "PRUNED"
    assert compare.status_label(interrupted) == "INTERRUPTED"
    assert compare.filter_runs([pruned, interrupted], status=["PRUNED"]) == [pruned]
    assert len(compare.filter_runs([pruned, interrupted], status=["INTERRUPTED"])) == 2
    _, rows = compare.compare_rows([pruned], [])
    assert rows[0]["status"] == "PRUNED"
