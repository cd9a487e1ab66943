"""diff helpers on hand-built runs: run lookup by prefix, hyperparameter and group-table diffs."""

from __future__ import annotations

import pytest

from capreolus_opt.analysis.diff import (
    find_run,
    group_table_differences,
    group_totals,
    hparam_differences,
)
from capreolus_opt.records.record import Run


def _run(uuid: str, hparams: dict, table: list[dict]) -> Run:
    return Run(run_uuid=uuid, status="COMPLETED", start_time=None, stop_time=None,
               hparams=hparams, gin_files=[], gin_bindings=[], seed=0, group_table=table,
               metrics={}, result={})  # fmt: skip


ROW = {"variable": "encoder/kernel", "shape": [4, 4], "params": 16, "group": "encoder"}


def test_find_run_by_uuid_or_unique_prefix():
    runs = [_run("abc123" + "0" * 26, {}, []), _run("abd456" + "0" * 26, {}, [])]
    assert find_run(runs, "abc") is runs[0]
    assert find_run(runs, runs[1].run_uuid.upper()) is runs[1]
    with pytest.raises(ValueError, match="ambiguous: it matches abc12300, abd45600"):
        find_run(runs, "ab")
    with pytest.raises(ValueError, match="no run with UUID or prefix 'ff'"):
        find_run(runs, "ff")


def test_hparam_and_group_table_differences():
    head = {"variable": "head/kernel", "shape": [4, 1], "params": 4, "group": "head"}
    a = _run("a" * 32, {"A.lr": 1e-3, "A.wd": 0.0}, [ROW, head])
    b = _run("b" * 32, {"A.lr": 3e-4, "B.x": 1}, [dict(ROW, group="default")])
    assert hparam_differences(a, b) == [
        ("A.lr", 1e-3, 3e-4), ("A.wd", 0.0, "(unset)"), ("B.x", "(unset)", 1),
    ]  # fmt: skip
    assert group_table_differences(a, b) == [
        ("encoder/kernel", "group", "encoder", "default"),
        ("head/kernel", "row", "present", "(absent)"),
    ]
    assert group_totals(a) == {"encoder": (1, 16), "head": (1, 4)}
    assert group_totals(b) == {"default": (1, 16)}


def test_merging_copies_a_live_running_copy_outranks_a_stale_one():
    from capreolus_opt.records.load import _merge

    stale, live = _run("ab" * 16, {}, []), _run("ab" * 16, {}, [])
    stale.status, live.status = "DIED", "RUNNING"
    _merge(stale, live)
    assert stale.status == "RUNNING"
    done = _run("ab" * 16, {}, [])
    _merge(stale, done)  # a finished copy wins over both
    assert stale.status == "COMPLETED"
