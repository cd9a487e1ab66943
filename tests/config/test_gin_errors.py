"""Gin input errors: includes resolved beside their file, include cycles refused, and through
the real CLI exit 2 with one message naming the binding and no record."""

from __future__ import annotations

import pytest

from capreolus_opt import config as gin_config
from tests.cli_helpers import SMOKE, run_cli


@pytest.mark.slow
@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (
            "train.num_steps = '100'",
            "gin binding train.num_steps = '100' has type str; expected int",
        ),
        (
            "AdamMultilr.learning_rate = 'fast'",
            "AdamMultilr.learning_rate = 'fast' has type str; expected float or "
            "LearningRateSchedule",
        ),
        ("train.num_steps = %gin.REQUIRED", "gin binding train.num_steps is %gin.REQUIRED"),
        # Values of the right type that the optimizer refuses, before the run is recorded.
        ("AdamMultilr.beta_1 = 1.5", "AdamMultilr.beta_1 must be a float in [0, 1). Received: 1.5"),
        ("AdamMultilr.weight_decay = -0.1", "AdamMultilr.weight_decay must be a finite float >= 0"),
    ],
)
def test_wrong_or_missing_values_are_input_errors(tmp_path, binding, message):
    proc = run_cli(
        "train", SMOKE, "--gin_param", binding, "--observer", "file://runs", cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "<object object" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_including_a_shipped_config_by_absolute_path_follows_its_own_includes(tmp_path):
    # smoke.gin itself includes 'quickstart.gin' by a relative name.
    user = tmp_path / "mine.gin"
    user.write_text(f"include '{SMOKE}'\ntrain.num_steps = 2\n")
    gin_config.parse_config([str(user)], [])
    assert gin_config.configured("train.num_steps") == 2
    assert "Path not found" not in gin_config.config_text()


def test_a_file_including_itself_is_one_error_naming_the_cycle(tmp_path):
    own = tmp_path / "own.gin"
    own.write_text("include 'own.gin'\ntrain.num_steps = 2\n")
    with pytest.raises(gin_config.GinConfigError, match="own.gin' includes itself") as info:
        gin_config.parse_config([str(own)], [])
    assert f"({own} -> {own})" in str(info.value)
    (tmp_path / "a.gin").write_text("include 'b.gin'\n")
    (tmp_path / "b.gin").write_text(f"include '{SMOKE}'\ninclude 'a.gin'\n")
    with pytest.raises(gin_config.GinConfigError, match="a.gin -> .*b.gin -> .*a.gin"):
        gin_config.parse_config([str(tmp_path / "a.gin")], [])


def test_a_diamond_of_includes_is_not_a_cycle(tmp_path):
    (tmp_path / "d.gin").write_text(f"include '{SMOKE}'\n")
    (tmp_path / "b.gin").write_text("include 'd.gin'\n")
    (tmp_path / "c.gin").write_text("include 'd.gin'\n")
    (tmp_path / "a.gin").write_text("include 'b.gin'\ninclude 'c.gin'\ntrain.num_steps = 3\n")
    gin_config.parse_config([str(tmp_path / "a.gin")], [])
    assert gin_config.configured("train.num_steps") == 3


@pytest.mark.slow
def test_a_self_including_file_exits_2_through_the_cli_unrecorded(tmp_path):
    (tmp_path / "own.gin").write_text("include 'own.gin'\n")
    proc = run_cli("train", "own.gin", "--observer", "file://runs", cwd=tmp_path)
    assert proc.returncode == 2 and "includes itself" in proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
