"""A tracked run parses its gin config once: ``run_tracked`` parses, and the Sacred config hook,
the input checks and the training use that parse."""

from __future__ import annotations

import types

import gin

from capreolus_opt import config as gin_config
from capreolus_opt.tracking.run import RunRequest, run_tracked
from tests.cli_helpers import SMOKE


def _counting(monkeypatch) -> list[str]:
    """Every gin file gin parses from now on (includes too: each is a call of its own)."""
    parsed: list[str] = []
    real = gin.parse_config_file
    monkeypatch.setattr(gin, "parse_config_file", lambda path, *a, **k: (
        parsed.append(path), real(path, *a, **k))[1])  # fmt: skip
    return parsed


def test_a_tracked_run_parses_its_config_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parsed = _counting(monkeypatch)
    trained = []

    def run_training(*, workdir, sink=None, on_start=None):
        # What the real run reads of the config, from gin's state: the parse must still hold.
        trained.append(gin_config.configured("train.num_steps"))
        return types.SimpleNamespace(eval_metrics={"mrr@10": 1.0}, checkpoint_path=None)

    names = ("parse_config", "flat_hyperparameters", "config_text", "operative_config_text",
             "validate_inputs", "configured", "STEPS_PARAM")  # fmt: skip
    backend = types.SimpleNamespace(
        run_training=run_training, **{name: getattr(gin_config, name) for name in names}
    )
    request = RunRequest(
        gin_files=[SMOKE], gin_bindings=["train.num_steps = 3"], observers=["file://runs"],
        capture="no",
    )  # fmt: skip
    outcome = run_tracked(request, backend=backend, report=lambda line: None)
    assert outcome.status == "COMPLETED", outcome.message
    assert parsed.count(SMOKE) == 1  # smoke.gin, once (the file it includes: once too)
    assert len(parsed) == len(set(parsed))
    assert trained == [3]
