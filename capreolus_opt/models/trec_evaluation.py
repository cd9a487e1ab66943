"""TREC evaluation of a reranker: run files, trec_eval metrics per split, interpolation.

``TrecEvaluator.metrics(outputs)`` turns the scores of one evaluation (every dev and test
candidate of ``TrecRerankingData``) into a run per split, evaluates both with ``ir_measures``
(``data/trec/measures.py``) and returns the dev metrics (what the training loop logs as
``eval/...`` and selects the best model by). With ``interpolate=True`` the reported run is
``w * first stage + (1 - w) * model`` (per-query min-max normalised), ``w`` chosen on dev from
``0.0, 0.1, ..., 1.0`` by the selection metric (the smallest ``w`` among equals) and applied
unchanged to test. ``record(step, directory)`` writes that evaluation's files:

- ``step_<N>.dev.run``, ``step_<N>.test.run``: TREC runs (trec_eval's order; scores exact);
- ``step_<N>.per_query.tsv``: ``split qid <metric>...`` for every evaluated query;
- ``step_<N>.metrics.json``: ``{"dev/ndcg@10": ..., "test/ndcg@10": ..., ...}``;
- ``dev.qrels``, ``test.qrels``: the judgments of each split's queries, which the metrics are
  computed against (``ir_measures test.qrels step_<N>.test.run ...`` gives the same numbers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from capreolus_opt.data.trec.measures import MEASURES, evaluate_run, write_qrels
from capreolus_opt.data.trec.runfile import interpolate, write_run

_WEIGHTS = tuple(i / 10 for i in range(11))
SPLITS = ("dev", "test")


class TrecEvaluator:
    """Evaluates reranker scores of a ``TrecRerankingData`` (see the module docstring)."""

    def __init__(self, data: Any, *, selection_metric: str, interpolate: bool) -> None:
        if selection_metric not in MEASURES:
            raise ValueError(
                f"selection_metric must be one of {sorted(MEASURES)}. "
                f"Received: {selection_metric!r}"
            )
        self.data = data
        self.selection_metric = selection_metric
        self.interpolate = interpolate
        self._last: dict[str, Any] | None = None

    def _runs(self, outputs: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
        index = self.data.eval_index()
        n = len(index.qid)
        pair = np.asarray(outputs["pair"]).reshape(-1)
        score = np.asarray(outputs["score"], np.float64).reshape(-1)
        if pair.shape != (n,) or not np.array_equal(np.sort(pair), np.arange(n)):
            raise ValueError(f"evaluation covered {pair.size} pairs, expected each of {n} once")
        if not np.isfinite(score).all():
            raise ValueError(f"the model gave {int((~np.isfinite(score)).sum())} non-finite scores")
        scores = np.empty((n,), np.float64)
        scores[pair] = score
        runs: dict[str, dict] = {s: {} for s in SPLITS}
        first: dict[str, dict] = {s: {} for s in SPLITS}
        for i, (split, qid, docid) in enumerate(
            zip(index.split, index.qid, index.docid, strict=True)
        ):
            runs[str(split)].setdefault(qid, {})[docid] = float(scores[i])
            first[str(split)].setdefault(qid, {})[docid] = float(index.first_stage_score[i])
        return runs, first

    def metrics(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """Dev metrics of this evaluation (test metrics and runs are kept for ``record``)."""
        runs, first = self._runs(outputs)
        qrels = self.split_qrels()
        weight = None
        if self.interpolate:
            weight = max(
                _WEIGHTS,
                key=lambda w: (
                    evaluate_run(qrels["dev"], interpolate(runs["dev"], first["dev"], w))[0][
                        self.selection_metric
                    ],
                    -w,
                ),
            )
            runs = {s: interpolate(runs[s], first[s], weight) for s in SPLITS}
        flat: dict[str, float] = {}
        per_query: dict[str, dict] = {}
        for split in SPLITS:
            agg, per_query[split] = evaluate_run(qrels[split], runs[split])
            flat.update({f"{split}/{k}": v for k, v in agg.items()})
        if weight is not None:
            flat["interpolation_weight"] = weight
        self._last = {"runs": runs, "metrics": flat, "per_query": per_query}
        dev = {k.removeprefix("dev/"): v for k, v in flat.items() if k.startswith("dev/")}
        if weight is not None:
            dev["interpolation_weight"] = weight
        return dev

    def split_qrels(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{split: qrels of the split's judged queries}`` for dev and test."""
        qrels, folds = self.data.qrels, self.data.folds
        return {s: {q: qrels[q] for q in folds[s] if q in qrels} for s in SPLITS}

    def record(self, step: int, directory: str) -> list[str]:
        """Writes the files of the last evaluation (module docstring); returns their paths."""
        if self._last is None:
            raise RuntimeError("record() before any evaluation")
        os.makedirs(directory, exist_ok=True)
        stem = os.path.join(directory, f"step_{step:08d}")
        paths = [write_run(f"{stem}.{s}.run", self._last["runs"][s]) for s in SPLITS]
        names = list(MEASURES)
        lines = ["\t".join(["split", "qid", *names])]
        for split in SPLITS:
            for qid, values in sorted(self._last["per_query"][split].items()):
                lines.append("\t".join([split, qid, *(repr(values[n]) for n in names)]))
        paths.append(_write_text(f"{stem}.per_query.tsv", "\n".join(lines) + "\n"))
        paths.append(_write_text(f"{stem}.metrics.json", json.dumps(self._last["metrics"])))
        for split, qrels in self.split_qrels().items():
            paths.append(write_qrels(os.path.join(directory, f"{split}.qrels"), qrels))
        return paths


def _write_text(path: str, text: str) -> str:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def recorded_metrics(step: int, directory: str) -> dict[str, float]:
    """The ``dev/...`` and ``test/...`` metrics that ``record(step, directory)`` wrote."""
    with open(os.path.join(directory, f"step_{step:08d}.metrics.json"), encoding="utf-8") as f:
        return {k: float(v) for k, v in json.load(f).items()}
