"""SIGTERM during a real (smoke) training run, then ``--resume``: the interrupted run is recorded
INTERRUPTED with its points flushed, and its points plus the resumed run's equal those of an
uninterrupted run (same steps, values within float32 round-off)."""

from __future__ import annotations

import json
import os
import signal
import types

import numpy as np
import pytest

from capreolus_opt import config as gin_config
from capreolus_opt.tracking.experiment import SMOKE_GIN
from tests.tracking.tracking_helpers import file_metrics, file_runs, train

SIGNAL_AFTER_STEP = 4
ARGS = [
    "--gin_param", "train.num_steps = 8",
    "--gin_param", "train.eval_every = 0",
    "--gin_param", "train.checkpoint_every = 4",
]  # fmt: skip


class _SignalAfter:
    """Wraps the real sink; sends SIGTERM to this process once ``step`` has been logged."""

    def __init__(self, sink, step):
        self._sink, self._step, self._sent = sink, step, False

    def log_metrics(self, step, metrics):
        self._sink.log_metrics(step, metrics)
        if step >= self._step and not self._sent:
            self._sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def flush(self):
        self._sink.flush()


def _sigterm_backend():
    def run_training(*, workdir, sink=None, on_start=None):
        wrapped = _SignalAfter(sink, SIGNAL_AFTER_STEP)
        return gin_config.run_training(workdir=workdir, sink=wrapped, on_start=on_start)

    fns = ("parse_config", "flat_hyperparameters", "config_text", "operative_config_text")
    return types.SimpleNamespace(
        run_training=run_training, **{f: getattr(gin_config, f) for f in fns}
    )


@pytest.mark.slow
def test_sigterm_then_resume_equals_uninterrupted(in_tmp, capsys):
    assert train([SMOKE_GIN, *ARGS, "--observer", "file://full"], backend=gin_config) == 0
    code = train([SMOKE_GIN, *ARGS, "--observer", "file://cut"], backend=_sigterm_backend())
    assert code == 130
    (cut_dir,) = file_runs(in_tmp / "cut")
    assert json.loads((cut_dir / "run.json").read_text())["status"] == "INTERRUPTED"
    cut = file_metrics(cut_dir)
    assert max(s for s, _ in cut["train/loss"]) == SIGNAL_AFTER_STEP  # flushed up to the signal
    assert train(["--resume", str(cut_dir), "--observer", "file://cut"], backend=gin_config) == 0
    resumed_dir = file_runs(in_tmp / "cut")[1]
    info = json.loads((resumed_dir / "info.json").read_text())
    assert info["resumed_from"] == json.loads((cut_dir / "info.json").read_text())["run_uuid"]
    resumed = file_metrics(resumed_dir)
    (full_dir,) = file_runs(in_tmp / "full")
    full = file_metrics(full_dir)
    assert set(cut) | set(resumed) == set(full)
    for name, points in full.items():
        combined = cut.get(name, []) + resumed.get(name, [])
        assert [s for s, _ in combined] == [s for s, _ in points], name
        np.testing.assert_allclose(
            [v for _, v in combined], [v for _, v in points], rtol=1e-5, atol=1e-7, err_msg=name
        )
