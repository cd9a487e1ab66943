"""The gin layer: parse-time errors, flat hyperparameters, and ``capreolus-opt groups``."""

from __future__ import annotations

import json

import pytest

from capreolus_opt import gin_bindings
from capreolus_opt.commands.groups import build_group_table
from tests.cli_helpers import ROOT, SMOKE, run_cli


def test_misspelt_binding_fails_at_parse_time_naming_it():
    with pytest.raises(gin_bindings.GinConfigError, match="learnig_rate"):
        gin_bindings.parse_config([SMOKE], ["AdamMultilr.learnig_rate = 1e-3"])


def test_missing_gin_file_is_named():
    with pytest.raises(gin_bindings.GinConfigError, match="nope.gin"):
        gin_bindings.parse_config(["nope.gin"], [])


def test_includes_resolve_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gin_bindings.parse_config([SMOKE], [])
    assert gin_bindings.configured("train.num_steps") == 8
    assert gin_bindings.configured("AdamMultilr.learning_rate") == 2e-3  # from quickstart.gin


def test_flat_hyperparameters_have_bindings_defaults_and_flattened_groups():
    gin_bindings.parse_config([SMOKE], ["LR = 5e-4", "AdamMultilr.learning_rate = %LR"])
    flat = dict(gin_bindings.flat_hyperparameters())
    assert flat["AdamMultilr.learning_rate"] == 5e-4  # macro resolved
    assert flat["AdamMultilr.beta_2"] == 0.999  # signature default, never bound
    assert flat["AdamMultilr.pattern_lrs[1].patterns"] == ["^encoder/"]
    assert flat["AdamMultilr.pattern_lrs[1].lr"] == 1e-3
    assert flat["train.task"] == "@RerankingTask()"
    assert flat["SyntheticRankingData.vocab_size"] == 300  # reached through a reference
    assert "train.workdir" not in flat and "train.sink" not in flat  # runtime, not hparams
    json.dumps(sorted(flat.items()))  # storable by every observer


def test_group_table_of_the_smoke_config_covers_every_variable():
    gin_bindings.parse_config([SMOKE], [])
    table = build_group_table()
    groups = {row.group for row in table.rows}
    assert groups == {"embedding", "encoder", "default"}
    for row in table.rows:
        expected = (
            "embedding"
            if row.variable.startswith("embedding/")
            else "encoder"
            if row.variable.startswith("encoder/")
            else "default"
        )
        assert row.group == expected, row


def test_groups_cli_prints_table_with_totals():
    proc = run_cli("groups", SMOKE)
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith(("embedding/", "head/"))]
    assert rows and all(r[3] in {"embedding", "default"} for r in rows)
    total = next(ln for ln in proc.stdout.splitlines() if ln.startswith("total"))
    variable_rows = [ln.split() for ln in proc.stdout.splitlines() if "/" in ln.split(" ")[0]]
    params = sum(int(r[2].replace(",", "")) for r in variable_rows)
    assert f"{params:,}" in total


def test_groups_cli_strict_fails_on_a_pattern_that_matches_nothing():
    typo = 'AdamMultilr.pattern_lrs = [{"name": "enc", "patterns": ["^encodr/"], "lr": 1e-4}]'
    proc = run_cli("groups", SMOKE, "--gin_param", typo, "--strict")
    assert proc.returncode == 1
    assert "^encodr/" in proc.stderr
    lenient = run_cli("groups", SMOKE, "--gin_param", typo)
    assert lenient.returncode == 0
    assert "^encodr/" in lenient.stderr  # still warned


def test_groups_cli_rejects_a_bad_binding():
    proc = run_cli("groups", SMOKE, "--gin_param", "AdamMultilr.learnig_rate = 1e-3")
    assert proc.returncode != 0
    assert "learnig_rate" in proc.stderr


def test_every_gin_config_opens_with_the_command_that_runs_it():
    for path in sorted((ROOT / "gin_configs").rglob("*.gin")):
        head = path.read_text().split("\n\n")[0]
        assert "capreolus-opt train" in head, f"{path} must open with the command that runs it"
        assert "Must be set" in head, f"{path} must say what must be set"
