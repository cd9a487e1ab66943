"""Bad sources and bad records: clear errors and exit codes, nothing created, nothing crashes."""

from __future__ import annotations

import json
import os

import pytest

from tests.recorded_runs import Spec, lr_specs, record_run, run_cli


def _file_runs(observers, specs):
    for spec in specs:
        record_run(spec, [observers["make_file"]()])


def test_compare_on_a_mistyped_sqlite_file_creates_nothing(tmp_path, capsys):
    typo = tmp_path / "typo.db"
    assert run_cli(["compare", f"sqlite:///{typo}"]) == 1
    err = capsys.readouterr().err
    assert "no SQLite database at" in err and str(typo) in err
    assert not typo.exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("postgresql://u:pw@localhost:notaport/db", "its port is not a number"),
        ("mysql://u@h/db", "unsupported run location 'mysql://u@h/db'"),
        ("mongodb://h/exps/sub", "is not a MongoDB database name"),
    ],
)
def test_malformed_sources_exit_2_naming_them(source, message, capsys):
    assert run_cli(["compare", source]) == 2
    err = capsys.readouterr().err
    assert message in err and ":pw@" not in err


def test_one_record_with_a_non_numeric_step_is_skipped_not_fatal(observers, capsys):
    specs = lr_specs((1e-3, 3e-4))
    _file_runs(observers, specs)
    folders = sorted(
        (p for p in os.scandir(observers["file"]) if p.name.isdigit()), key=lambda p: int(p.name)
    )
    metrics_path = os.path.join(folders[0].path, "metrics.json")
    with open(metrics_path) as f:
        metrics = json.load(f)
    metrics["train/loss"]["steps"][2] = "three"
    with open(metrics_path, "w") as f:
        json.dump(metrics, f)
    assert run_cli(["compare", observers["file"], "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [row["run"] for row in json.loads(out)] == [specs[1].run_uuid]
    assert f"skipped: {folders[0].path}: metric 'train/loss' has a non-integer step 'three'" in err


@pytest.mark.parametrize("where", ["missing", "readonly"])
def test_plot_into_an_unusable_folder_is_an_input_error(observers, tmp_path, where, capsys):
    _file_runs(observers, lr_specs((1e-3,)))
    folder = tmp_path / where
    if where == "readonly":
        folder.mkdir()
        folder.chmod(0o500)
        if os.access(folder, os.W_OK):  # root ignores mode bits: make the folder a file's child
            folder.chmod(0o700)
            folder = tmp_path / "a_file"
            folder.write_text("")
    target = folder / "curves.png"
    code = run_cli(["plot", observers["file"], "--metric", "train/loss", "-o", str(target)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"-o {str(target)!r}" in err and ("does not exist" in err or "not writable" in err)
    assert "Traceback" not in err


def test_terminal_control_sequences_in_records_are_escaped(observers, capsys):
    hostile = "\x1b]0;pwned\x07\x1b[2J"
    specs = [
        Spec(hparams=[["AdamMultilr.learning_rate", 1e-3], ["note", hostile]]),
        Spec(hparams=[["AdamMultilr.learning_rate", 3e-4], ["note", "plain"]]),
    ]
    _file_runs(observers, specs)
    for fmt in ("table", "markdown", "csv"):
        assert run_cli(["compare", observers["file"], "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out
        assert "\\x1b]0;pwned\\x07" in out
    a, b = specs[0].run_uuid[:8], specs[1].run_uuid[:8]
    assert run_cli(["diff", "--source", observers["file"], a, b]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b" in out


def test_sweep_refuses_what_train_would_refuse_before_any_point(tmp_path, capsys):
    gin = tmp_path / "a.gin"
    gin.write_text("")
    code = run_cli(
        ["sweep", str(gin), "--grid", "AdamMultilr.learning_rate=[1e-3]", "--observer",
         "mysql://u:hunter2@h/db"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "unsupported run location 'mysql://u:***@h/db'" in err and "hunter2" not in err


def test_sweep_dry_run_shows_observers_masked_in_the_environment(tmp_path, capsys):
    gin = tmp_path / "a.gin"
    gin.write_text("")
    url = "postgresql://alice:hunter2@db/runs?password=hunter2"
    code = run_cli(
        ["sweep", str(gin), "--grid", "AdamMultilr.learning_rate=[1e-3, 3e-4]", "--observer",
         url, "--dry-run"]
    )  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("hunter2" not in line for line in lines)
    assert all(line.startswith("CAPREOLUS_OPT_OBSERVERS=") for line in lines)
    assert all("--observer" not in line for line in lines)
