"""TREC evaluation of a reranker: run files, trec_eval metrics, interpolation, significance.

Training evaluates the dev split only; the test split is scored once, at the end, with the
model selected on dev (as Capreolus does). ``TrecEvaluator.metrics(outputs)`` turns the scores
of one dev evaluation (every dev candidate of ``TrecRerankingData``) into a run, evaluates it
with ``ir_measures`` (``metrics/trec.py``) and returns what the training loop logs as
``eval/...`` and selects the best model by. With ``interpolate=True`` the reported run is
``w * first stage + (1 - w) * model`` (per-query min-max normalised), ``w`` chosen on dev from
``0.0, 0.1, ..., 1.0`` by the selection metric (the smallest ``w`` among equals) and applied
unchanged to test. ``test_metrics(outputs, weight)`` does the same for the test candidates.

Each split's metrics (``metrics.json``, and the run's final result) are, for ``S`` = ``dev`` or
``test`` and every measure ``m``:

- ``S/m``: the reported run (interpolated when interpolating, else the model alone);
- ``S/model/m``: the model alone; ``S/first_stage/m``: the first stage alone;
- ``S/model/<test>`` and, when interpolating, ``S/interpolated/<test>``: that run against the
  first stage on the per-query selection metric, paired over the split's judged queries
  (``capreolus_opt.stats.paired_comparison``): ``diff`` (mean difference), ``p_ttest``,
  ``p_randomisation``, ``wins``, ``ties``, ``losses``;
- ``interpolation_weight`` when interpolating.

``record(step, directory)`` writes the last dev evaluation's files, ``record_test(step,
directory)`` adds the test split's to the same step's:

- ``step_<N>.dev.run``, ``step_<N>.test.run``: TREC runs (trec_eval's order; scores exact);
- ``step_<N>.per_query.tsv``: ``split qid <metric>...`` for every evaluated query;
- ``step_<N>.metrics.json``: the flat metrics above;
- ``dev.qrels``, ``test.qrels``: the judgments of each split's queries, which the metrics are
  computed against (``ir_measures test.qrels step_<N>.test.run ...`` gives the same numbers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from capreolus_opt.data.trec.runfile import interpolate, write_qrels, write_run
from capreolus_opt.metrics.trec import MEASURES, evaluate_run
from capreolus_opt.stats import paired_comparison

_WEIGHTS = tuple(i / 10 for i in range(11))
SPLITS = ("dev", "test")
#: per-evaluation keys the training loop logs as ``eval/...`` besides the reported measures
LOGGED_TESTS = ("p_ttest", "p_randomisation")


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
        self._last: dict[str, Any] = {}

    def rows(self, split: str) -> np.ndarray:
        """Row numbers (``pair`` values) of ``split``'s candidates in ``eval_pairs()``."""
        return np.flatnonzero(np.asarray(self.data.eval_index().split) == split)

    def _runs(self, outputs: Mapping[str, np.ndarray], split: str) -> tuple[dict, dict]:
        """``(model run, first-stage run)`` of ``split`` from the scores of its candidates."""
        index = self.data.eval_index()
        rows = self.rows(split)
        pair = np.asarray(outputs["pair"]).reshape(-1)
        score = np.asarray(outputs["score"], np.float64).reshape(-1)
        if pair.shape != rows.shape or not np.array_equal(np.sort(pair), rows):
            raise ValueError(
                f"evaluation covered {pair.size} pairs, expected each of the {rows.size} "
                f"{split} pairs once"
            )
        if not np.isfinite(score).all():
            raise ValueError(f"the model gave {int((~np.isfinite(score)).sum())} non-finite scores")
        run: dict[str, dict] = {}
        first: dict[str, dict] = {}
        for i, s in zip(pair, score, strict=True):
            qid, docid = index.qid[i], index.docid[i]
            run.setdefault(qid, {})[docid] = float(s)
            first.setdefault(qid, {})[docid] = float(index.first_stage_score[i])
        return run, first

    def _choose_weight(self, qrels: dict, run: dict, first: dict) -> float:
        def dev_value(w: float) -> float:
            return evaluate_run(qrels, interpolate(run, first, w))[0][self.selection_metric]

        return max(_WEIGHTS, key=lambda w: (dev_value(w), -w))

    def _evaluate(self, outputs: Mapping, split: str, weight: float | None) -> dict[str, float]:
        """The split's flat metrics (module docstring); keeps its run for ``record``."""
        run, first = self._runs(outputs, split)
        qrels = self.split_qrels()[split]
        if self.interpolate and weight is None:
            weight = self._choose_weight(qrels, run, first)
        flat: dict[str, float] = {}
        per_query: dict[str, dict] = {}
        values: dict[str, list[float]] = {}
        aggs: dict[str, dict[str, float]] = {}
        runs = {"model": run, "first_stage": first}
        if weight is not None:
            runs["interpolated"] = interpolate(run, first, weight)
        for name, one in runs.items():
            aggs[name], per_query[name] = evaluate_run(qrels, one)
            if name != "interpolated":
                flat.update({f"{split}/{name}/{k}": v for k, v in aggs[name].items()})
            values[name] = [
                per_query[name].get(q, {}).get(self.selection_metric, 0.0) for q in sorted(qrels)
            ]
        reported_name = "interpolated" if weight is not None else "model"
        flat.update({f"{split}/{k}": v for k, v in aggs[reported_name].items()})
        for name in runs.keys() - {"first_stage"}:
            tests = paired_comparison(values[name], values["first_stage"])
            flat.update({f"{split}/{name}/{k}": v for k, v in tests.items()})
        if weight is not None:
            flat["interpolation_weight"] = float(weight)
        self._last[split] = {
            "run": runs[reported_name],
            "metrics": flat,
            "per_query": per_query[reported_name],
        }
        return flat

    def metrics(self, outputs: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The dev evaluation the loop logs: the reported measures, ``interpolation_weight``,
        the selection metric of the model alone and of the first stage, and the p-values of
        the model (and the interpolated run) against the first stage."""
        flat = self._evaluate(outputs, "dev", None)
        out = {k.removeprefix("dev/"): v for k, v in flat.items() if k.count("/") == 1}
        sel = self.selection_metric
        out[f"model/{sel}"] = flat[f"dev/model/{sel}"]
        out[f"first_stage/{sel}"] = flat[f"dev/first_stage/{sel}"]
        for name in ("model", "interpolated"):
            out.update({f"{name}/{t}": flat[f"dev/{name}/{t}"] for t in LOGGED_TESTS
                        if f"dev/{name}/{t}" in flat})  # fmt: skip
        if "interpolation_weight" in flat:
            out["interpolation_weight"] = flat["interpolation_weight"]
        return out

    def test_metrics(self, outputs: Mapping, weight: float | None) -> dict[str, float]:
        """The test split's flat metrics, interpolated with the dev-chosen ``weight``."""
        if self.interpolate and weight is None:
            raise ValueError("test_metrics needs the dev-chosen interpolation weight")
        return self._evaluate(outputs, "test", weight if self.interpolate else None)

    def split_qrels(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{split: qrels of the split's judged queries}`` for dev and test."""
        qrels, folds = self.data.qrels, self.data.folds
        return {s: {q: qrels[q] for q in folds[s] if q in qrels} for s in SPLITS}

    def record(self, step: int, directory: str) -> list[str]:
        """Writes the files of the last dev evaluation (module docstring); returns their paths."""
        if "dev" not in self._last:
            raise RuntimeError("record() before any evaluation")
        os.makedirs(directory, exist_ok=True)
        stem = os.path.join(directory, f"step_{step:08d}")
        paths = [write_run(f"{stem}.dev.run", self._last["dev"]["run"])]
        lines = ["\t".join(["split", "qid", *MEASURES]), *self._per_query_lines("dev")]
        paths.append(_write_text(f"{stem}.per_query.tsv", "\n".join(lines) + "\n"))
        paths.append(_write_text(f"{stem}.metrics.json", json.dumps(self._last["dev"]["metrics"])))
        paths.append(write_qrels(os.path.join(directory, "dev.qrels"), self.split_qrels()["dev"]))
        return paths

    def record_test(self, step: int, directory: str) -> list[str]:
        """Adds the last test evaluation to ``step``'s files (its run, its per-query lines, its
        metrics beside the dev ones) and writes ``test.qrels``; returns the paths."""
        if "test" not in self._last:
            raise RuntimeError("record_test() before test_metrics()")
        stem = os.path.join(directory, f"step_{step:08d}")
        paths = [write_run(f"{stem}.test.run", self._last["test"]["run"])]
        with open(f"{stem}.per_query.tsv", encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if not ln.startswith("test\t")]
        lines += self._per_query_lines("test")
        paths.append(_write_text(f"{stem}.per_query.tsv", "\n".join(lines) + "\n"))
        metrics = {**recorded_metrics(step, directory), **self._last["test"]["metrics"]}
        paths.append(_write_text(f"{stem}.metrics.json", json.dumps(metrics)))
        paths.append(write_qrels(os.path.join(directory, "test.qrels"), self.split_qrels()["test"]))
        return paths

    def _per_query_lines(self, split: str) -> list[str]:
        return [
            "\t".join([split, qid, *(repr(values[n]) for n in MEASURES)])
            for qid, values in sorted(self._last[split]["per_query"].items())
        ]


def _write_text(path: str, text: str) -> str:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def recorded_metrics(step: int, directory: str) -> dict[str, float]:
    """The metrics that ``record(step, directory)`` (and ``record_test``) wrote."""
    with open(os.path.join(directory, f"step_{step:08d}.metrics.json"), encoding="utf-8") as f:
        return {k: float(v) for k, v in json.load(f).items()}
