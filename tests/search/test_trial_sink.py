"""A pruned trial stops its run through the tracking sink's public ``record_info``: the run's
info says why and when, and training stops with ``TrialPruned``."""

from __future__ import annotations

import pytest

from capreolus_opt.search.trial import TrialPruned, TrialSink


class _Trial:
    def __init__(self, prune_at: int) -> None:
        self.prune_at, self.reported = prune_at, {}

    def report(self, value: float, step: int) -> None:
        self.reported[step] = value

    def should_prune(self) -> bool:
        return max(self.reported) >= self.prune_at


class _RunSink:
    def __init__(self) -> None:
        self.points, self.info = [], {}

    def log_metrics(self, step, metrics):
        self.points.append((step, dict(metrics)))

    def record_info(self, **values):
        self.info.update(values)


def test_a_pruned_trial_records_why_and_when_through_the_sink():
    inner, trial = _RunSink(), _Trial(prune_at=4)
    sink = TrialSink(inner, trial, "eval/mrr", num_steps=10, reported=set())
    sink.log_metrics(2, {"eval/mrr": 0.25, "train/loss": 1.0})
    assert inner.info == {} and trial.reported == {2: 0.25}
    with pytest.raises(TrialPruned, match="pruned by the study's pruner at step 4"):
        sink.log_metrics(4, {"eval/mrr": 0.5})
    assert inner.info == {"stopped_reason": "pruned", "pruned_at_step": 4}
    assert [step for step, _ in inner.points] == [2, 4] and sink.pruned_at == 4
