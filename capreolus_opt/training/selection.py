"""What each evaluation leaves behind, and the best model by a dev metric.

A task that evaluates on a dev split and a test split (``RerankingTask`` over
``TrecRerankingData``) provides:

- ``selection_metric: str | None``: the key of ``eval_metrics`` to maximise (dev), or None;
- ``record_evaluation(step, directory) -> list[str]``: writes the files of the evaluation just
  made (run files, per-query metrics) and returns their paths;
- ``final_metrics(step, directory) -> dict[str, float]``: the ``dev/...`` and ``test/...``
  metrics recorded for ``step``;
- ``export(directory)``: writes what reloading the model for reranking needs besides weights.

``EvaluationRecorder`` calls them after every evaluation, saves the model's weights
(``weights.py``) to ``<workdir>/best/`` whenever the dev metric improves (strictly: the earliest
of equal evaluations is kept), keeps ``best/best.json`` (``step``, ``metric``, ``value``) so a
resumed run continues the comparison, and at the end returns the recorded metrics of the best
step: the test numbers are those of the model selected on dev. Tasks without these methods
get the loop's metrics unchanged. Only the chief writes.
"""

from __future__ import annotations

import json
import os
from typing import Any

from capreolus_opt.training.weights import save_weights


class EvaluationRecorder:
    """See the module docstring."""

    def __init__(self, task: Any, model: Any, workdir: str, *, chief: bool) -> None:
        self.task = task
        self.model = model
        self.metric = getattr(task, "selection_metric", None)
        self.active = chief and self.metric is not None and hasattr(task, "record_evaluation")
        self.directory = os.path.join(workdir, "evaluations")
        self.best_dir = os.path.join(workdir, "best")
        self._state_path = os.path.join(self.best_dir, "best.json")
        self.best: dict[str, Any] | None = None
        if self.active and os.path.isfile(self._state_path):
            with open(self._state_path, encoding="utf-8") as f:
                self.best = json.load(f)

    def evaluated(self, step: int, metrics: dict[str, float]) -> None:
        """Record the evaluation at ``step``; keep the model if it is the best so far."""
        if not self.active:
            return
        self.task.record_evaluation(step, self.directory)
        value = float(metrics[self.metric])
        if self.best is not None and not value > self.best["value"]:
            return
        os.makedirs(self.best_dir, exist_ok=True)
        save_weights(self.model, os.path.join(self.best_dir, "model.weights.npz"))
        self.task.export(self.best_dir)
        self.best = {"step": step, "metric": self.metric, "value": value}
        tmp = f"{self._state_path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.best, f)
        os.replace(tmp, self._state_path)

    def finish(self, metrics: dict[str, float]) -> tuple[dict[str, float], list[str]]:
        """``(final metrics, artifact paths)``: the best step's recorded metrics and every file
        written under ``evaluations/`` plus ``best/best.json``; unchanged metrics when inactive."""
        if not self.active or self.best is None:
            return metrics, []
        final = self.task.final_metrics(self.best["step"], self.directory)
        final["best_step"] = float(self.best["step"])
        files = sorted(
            os.path.join(self.directory, name)
            for name in os.listdir(self.directory)
            if ".tmp" not in name
        )
        return final, [*files, self._state_path]
