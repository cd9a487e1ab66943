"""The gin layer: parse-time errors, flat hyperparameters, and ``capreolus-opt groups``."""

from __future__ import annotations

import inspect
import json

import keras
import pytest

from capreolus_opt import AdamMultilr, load_runs
from capreolus_opt import config as gin_config
from capreolus_opt.commands.groups import build_group_table
from capreolus_opt.config import registry
from tests.cli_helpers import ROOT, SMOKE, run_cli


def test_misspelt_binding_fails_at_parse_time_naming_it():
    with pytest.raises(gin_config.GinConfigError, match="learnig_rate"):
        gin_config.parse_config([SMOKE], ["AdamMultilr.learnig_rate = 1e-3"])


def test_missing_gin_file_is_named():
    with pytest.raises(gin_config.GinConfigError, match="nope.gin"):
        gin_config.parse_config(["nope.gin"], [])


def test_includes_resolve_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gin_config.parse_config([SMOKE], [])
    assert gin_config.configured("train.num_steps") == 8
    assert gin_config.configured("AdamMultilr.learning_rate") == 2e-3  # from quickstart.gin


def test_flat_hyperparameters_have_bindings_defaults_and_flattened_groups():
    gin_config.parse_config([SMOKE], ["LR = 5e-4", "AdamMultilr.learning_rate = %LR"])
    flat = dict(gin_config.flat_hyperparameters())
    assert flat["AdamMultilr.learning_rate"] == 5e-4  # macro resolved
    assert flat["AdamMultilr.beta_2"] == 0.999  # signature default, never bound
    assert flat["AdamMultilr.pattern_lrs"] == "[@embedding/lr_group(), @encoder/lr_group()]"
    assert flat["encoder/lr_group.patterns"] == ["^encoder/"]
    assert flat["encoder/lr_group.lr"] == 1e-3
    assert flat["train.task"] == "@RerankingTask()"
    assert flat["SyntheticRankingData.vocab_size"] == 300  # reached through a reference
    assert "train.workdir" not in flat and "train.sink" not in flat  # runtime, not hparams
    json.dumps(sorted(flat.items()))  # storable by every observer


def test_group_table_of_the_smoke_config_covers_every_variable():
    gin_config.parse_config([SMOKE], [])
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


@pytest.mark.slow
def test_groups_cli_prints_table_with_totals():
    proc = run_cli("groups", SMOKE)
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith(("embedding/", "head/"))]
    assert rows and all(r[3] in {"embedding", "default"} for r in rows)
    total = next(ln for ln in proc.stdout.splitlines() if ln.startswith("total"))
    variable_rows = [ln.split() for ln in proc.stdout.splitlines() if "/" in ln.split(" ")[0]]
    params = sum(int(r[2].replace(",", "")) for r in variable_rows)
    assert f"{params:,}" in total


@pytest.mark.slow
def test_groups_cli_strict_fails_on_a_pattern_that_matches_nothing():
    typo = 'AdamMultilr.pattern_lrs = [{"name": "enc", "patterns": ["^encodr/"], "lr": 1e-4}]'
    proc = run_cli("groups", SMOKE, "--gin_param", typo, "--strict")
    assert proc.returncode == 2
    assert "^encodr/" in proc.stderr
    lenient = run_cli("groups", SMOKE, "--gin_param", typo)
    assert lenient.returncode == 0
    assert "^encodr/" in lenient.stderr  # still warned


@pytest.mark.slow
def test_groups_cli_rejects_a_bad_binding():
    proc = run_cli("groups", SMOKE, "--gin_param", "AdamMultilr.learnig_rate = 1e-3")
    assert proc.returncode == 2
    assert "learnig_rate" in proc.stderr


def test_every_gin_config_opens_with_the_command_that_runs_it():
    for path in sorted((ROOT / "gin_configs").rglob("*.gin")):
        head = path.read_text().split("\n\n")[0]
        assert "capreolus-opt train" in head, f"{path} must open with the command that runs it"
        assert "Must be set" in head, f"{path} must say what must be set"


# --- the AdamMultilr factory and its bindable per-group names ---------------------------------
def _named_parameters(fn) -> dict[str, object]:
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def test_gin_factory_signature_matches_the_constructor():
    # Keras' Adam takes the base-optimizer arguments explicitly; AdamMultilr passes them through
    # **kwargs. The factory must offer every one, with the same default (it once lost `fused`).
    expected = {**_named_parameters(keras.optimizers.Adam.__init__)}
    expected.update(_named_parameters(AdamMultilr.__init__))
    assert _named_parameters(registry.adam_multilr) == expected


def _as_gin(value) -> str:
    if isinstance(value, str) and value and value[0] in "@[{(":
        return value  # recorded as gin text
    return repr(value)


def test_every_recorded_name_can_be_bound_back():
    gin_config.parse_config([SMOKE], [])
    recorded = gin_config.flat_hyperparameters()
    bindings = [f"{name} = {_as_gin(value)}" for name, value in recorded]
    gin_config.parse_config([SMOKE], bindings)  # every name parses as a binding
    assert gin_config.flat_hyperparameters() == recorded


def test_a_literal_group_list_is_recorded_whole_as_gin_text():
    groups = '[{"name": "enc", "patterns": ["^encoder/"], "lr": 1e-4}, ("^head/", 0.5)]'
    gin_config.parse_config([SMOKE], [f"AdamMultilr.pattern_lrs = {groups}"])
    flat = dict(gin_config.flat_hyperparameters())
    text = flat["AdamMultilr.pattern_lrs"]
    assert text == "[{'name': 'enc', 'patterns': ['^encoder/'], 'lr': 0.0001}, ('^head/', 0.5)]"
    assert not [name for name in flat if name.startswith("AdamMultilr.pattern_lrs[")]
    gin_config.parse_config([SMOKE], [f"AdamMultilr.pattern_lrs = {text}"])
    assert dict(gin_config.flat_hyperparameters())["AdamMultilr.pattern_lrs"] == text


def test_lr_group_needs_a_scope_naming_the_group():
    unscoped = ["AdamMultilr.pattern_lrs = [@lr_group()]", "lr_group.patterns = ['x']"]
    gin_config.parse_config([SMOKE], unscoped)
    with pytest.raises(ValueError, match=r"scope naming the group, e\.g\. .*@encoder/lr_group"):
        gin_config.configured("train.optimizer")()


def test_lr_group_passes_multipliers_and_is_validated_by_the_optimizer():
    bindings = [
        "AdamMultilr.weight_decay = 0.01",
        "encoder/lr_group.lr = None",
        "encoder/lr_group.lr_mult = 0.25",
        "encoder/lr_group.wd_mult = 0.0",
    ]
    gin_config.parse_config([SMOKE], bindings)
    opt = gin_config.configured("train.optimizer")()
    assert opt.group_names == ["embedding", "encoder", "default"]
    assert opt._group_specs[1].lr_mult == 0.25 and opt._group_specs[1].wd_mult == 0.0
    scheduled = ["encoder/lr_group.unfreeze_at = 'manual'", "embedding/lr_group.unfreeze_at = 5"]
    gin_config.parse_config([SMOKE], scheduled + ["embedding/lr_group.unfreeze_warmup = 2"])
    rows = {row.group: row for row in build_group_table()}
    assert rows["encoder"].unfreeze_at == "manual" and rows["embedding"].unfreeze_at == 5
    assert gin_config.configured("train.optimizer")()._group_specs[0].unfreeze_warmup == 2
    gin_config.parse_config([SMOKE], ["encoder/lr_group.lr_mult = 0.25"])  # lr is set too
    with pytest.raises(ValueError, match=r"pattern_lrs\[1\].*exactly one of the keys 'lr'"):
        gin_config.configured("train.optimizer")()


@pytest.mark.slow
def test_groups_cli_applies_a_per_group_binding():
    proc = run_cli("groups", SMOKE, "--gin_param", "encoder/lr_group.lr = 3e-4")
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith("encoder/")]
    assert rows and all(r[3] == "encoder" and r[5] == "0.0003" for r in rows)
    assert any(
        r[5] == "0.001"
        for r in (ln.split() for ln in proc.stdout.splitlines())
        if r and r[0].startswith("embedding/")
    )


@pytest.mark.slow
def test_sweep_dry_run_accepts_the_recorded_group_name():
    grid = "encoder/lr_group.lr=[1e-4, 3e-4]"
    proc = run_cli("sweep", SMOKE, "--grid", grid, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "encoder/lr_group.lr = 1e-4" in lines[0] and "encoder/lr_group.lr = 3e-4" in lines[1]


@pytest.mark.slow
def test_a_real_sweep_over_one_group_rate_records_that_name(tmp_path):
    runs = tmp_path / "runs"
    proc = run_cli(
        "sweep", SMOKE, "--grid", "encoder/lr_group.lr=[1e-4, 3e-4]",
        "--gin_param", "train.num_steps = 4", "--observer", f"file://{runs}",
        "--workdir_root", str(tmp_path / "wd"), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "encoder/lr_group.lr" in proc.stdout  # the sweep's table shows the swept name
    loaded = load_runs(str(runs))
    assert sorted(r.hparams["encoder/lr_group.lr"] for r in loaded) == [1e-4, 3e-4]
    for run in loaded:
        swept = run.hparams["encoder/lr_group.lr"]
        encoder_rows = [r for r in run.group_table if r["group"] == "encoder"]
        assert encoder_rows and all(r["lr"] == pytest.approx(swept) for r in encoder_rows)
        assert run.hparams["embedding/lr_group.lr"] == 1e-3
