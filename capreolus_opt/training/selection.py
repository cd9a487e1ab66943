"""What each evaluation leaves behind, and the best model by a dev metric.

A task that evaluates on a dev split and a test split (``RerankingTask`` over
``TrecRerankingData``) provides:

- ``selection_metric: str | None``: the key of ``eval_metrics`` to maximise (dev), or None;
- ``record_evaluation(step, directory) -> list[str]``: writes the files of the evaluation just
  made (run files, per-query metrics) and returns their paths;
- ``final_metrics(step, directory) -> dict[str, float]``: the ``dev/...`` and ``test/...``
  metrics recorded for ``step``;
- ``export(directory, model)``: writes what reloading the model for reranking needs: a
  manifest, and the model saved whole as ``model.keras`` when the manifest cannot rebuild it
  (``storage/workdir_layout.py``);
- optionally ``test_dataset(global_batch_size)`` and ``record_test_evaluation(step, outputs,
  directory, best)``: the test candidates, which evaluations during training leave out, and
  recording their scores as those of the best ``step`` (``best`` is its ``best.json``).

``EvaluationRecorder`` calls them after every evaluation and, whenever the dev metric improves
(strictly: the earliest of equal evaluations is kept), writes the model to ``<workdir>/best/``
with its weights stored once: the task's ``model.keras`` when it saved the model whole, else
``model.weights.npz`` (``weights.py``). It keeps ``best/best.json`` (``step``, ``metric``,
``value``, and the dev-chosen ``interpolation_weight`` when the task interpolates) so a resumed
run continues the comparison. At the end ``score_test`` reloads the best weights (from
whichever of the two files holds them) and scores the test candidates once with them, and
``finish`` returns the recorded metrics of the best step (the test numbers are those of the
model selected on dev), with the step-0 evaluation's beside them as ``start/...`` when there
was one (``train(eval_at_start=...)``). When the model alone is not better than the first
stage on dev it says so on stderr. A new best is written whole into ``best.new/`` and then
swapped in, so a kill never leaves the weights of one step beside the ``best.json`` of
another. Tasks without these methods get the loop's metrics unchanged. Only
the chief writes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TextIO

from capreolus_opt.storage.workdir_layout import (
    BEST_STATE,
    MODEL_FILE,
    WEIGHTS_FILE,
    Workdir,
    best_folder_weights,
    swap_folders,
)
from capreolus_opt.training.weights import restore_weights, save_weights


class EvaluationRecorder:
    """See the module docstring."""

    def __init__(self, task: Any, model: Any, workdir: str, *, chief: bool) -> None:
        self.task = task
        self.model = model
        self.metric = getattr(task, "selection_metric", None)
        self.active = chief and self.metric is not None and hasattr(task, "record_evaluation")
        layout = Workdir(workdir)
        self.directory = layout.evaluations
        self.best_dir = layout.best
        self._state_path = layout.best_state
        self.best: dict[str, Any] | None = None
        if self.active:
            recover_best_dir(self.best_dir)
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
        best = {"step": step, "metric": self.metric, "value": value}
        if "interpolation_weight" in metrics:  # chosen on dev: rerank applies it too
            best["interpolation_weight"] = float(metrics["interpolation_weight"])
        new, _ = swap_folders(self.best_dir)
        shutil.rmtree(new, ignore_errors=True)
        os.makedirs(new)
        self.task.export(new, self.model)
        if not os.path.isfile(os.path.join(new, MODEL_FILE)):  # saved whole: not twice
            save_weights(self.model, os.path.join(new, WEIGHTS_FILE))
        # Written last, aside then renamed: a best.new/ with a best.json is complete.
        state = os.path.join(new, BEST_STATE)
        with open(f"{state}.tmp", "w", encoding="utf-8") as f:
            json.dump(best, f)
        os.replace(f"{state}.tmp", state)
        _promote(new, self.best_dir)
        self.best = best

    def score_test(self, evaluate: Callable[[Any], dict], global_batch_size: int) -> bool:
        """Loads the best weights into the model and records the task's test candidates
        (``test_dataset(global_batch_size)``) scored by ``evaluate(dataset) -> outputs``;
        False (nothing done) when there is nothing to do. The model keeps the best weights."""
        test = getattr(self.task, "test_dataset", None)
        if not self.active or self.best is None or test is None:
            return False
        dataset = test(global_batch_size)
        if dataset is None:
            return False
        weights = best_folder_weights(self.best_dir)
        if weights is None:
            raise ValueError(f"{self.best_dir} holds no weights ({MODEL_FILE} or {WEIGHTS_FILE})")
        restore_weights(self.model, weights)
        self.task.record_test_evaluation(
            self.best["step"], evaluate(dataset), self.directory, self.best
        )
        return True

    def finish(
        self, metrics: dict[str, float], stream: TextIO | None = None
    ) -> tuple[dict[str, float], list[str]]:
        """``(final metrics, artifact paths)``: the best step's recorded metrics and every file
        written under ``evaluations/`` plus ``best/best.json``; unchanged metrics when inactive."""
        if not self.active or self.best is None:
            return metrics, []
        final = self.task.final_metrics(self.best["step"], self.directory)
        final["best_step"] = float(self.best["step"])
        if os.path.isfile(os.path.join(self.directory, "step_00000000.metrics.json")):
            start = self.task.final_metrics(0, self.directory)
            # The first stage's numbers are the same at every step: not repeated under start/.
            kept = {k: v for k, v in start.items() if k.startswith("dev/")}
            final.update({f"start/{k}": v for k, v in kept.items() if "/first_stage/" not in k})
        warning = model_not_better_warning(final, self.metric)
        if warning:
            print(warning, file=stream or sys.stderr)
        files = sorted(
            os.path.join(self.directory, name)
            for name in os.listdir(self.directory)
            if ".tmp" not in name
        )
        return final, [*files, self._state_path]


def model_not_better_warning(metrics: dict[str, float], metric: str) -> str | None:
    """A one-line warning when the model alone is not better than the first stage on dev
    (``dev/model/<metric>`` <= ``dev/first_stage/<metric>``), else None."""
    model = metrics.get(f"dev/model/{metric}")
    first = metrics.get(f"dev/first_stage/{metric}")
    if model is None or first is None or model > first:
        return None
    p = metrics.get("dev/model/p_randomisation", math.nan)
    return (
        f"warning: the learned model alone is not better than the first stage on dev: "
        f"{metric} {model:.4f} vs {first:.4f} (randomisation p = {p:.3g}, best step "
        f"{int(metrics.get('best_step', -1))}); its contribution is nil or negative"
    )


def _promote(new: str, best: str) -> None:
    """Replaces the folder ``best`` by the complete folder ``new``: ``best`` is moved aside to
    ``best.old`` first, so at every instant one complete best model exists under one of the
    three names (``recover_best_dir`` puts it back after a kill)."""
    _, old = swap_folders(best)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(best):
        os.rename(best, old)
    os.rename(new, best)
    shutil.rmtree(old, ignore_errors=True)


def recover_best_dir(best: str) -> None:
    """After a kill while a new best model was written: a complete ``best.new/`` (its
    ``best.json`` is written last) replaces ``best/``, an incomplete one is dropped, and a
    ``best.old/`` left without a ``best/`` is put back."""
    new, old = swap_folders(best)
    if os.path.isfile(os.path.join(new, BEST_STATE)):
        _promote(new, best)
    shutil.rmtree(new, ignore_errors=True)
    if not os.path.isdir(best) and os.path.isdir(old):
        os.rename(old, best)
    shutil.rmtree(old, ignore_errors=True)
