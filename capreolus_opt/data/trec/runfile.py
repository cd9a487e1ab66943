"""TREC run files: ranking order, writing, and score interpolation.

A run is ``{qid: {docid: score}}``. Its ranking is trec_eval's: by descending score, ties by
descending docid (``strcmp``), whatever the file's rank column says. ``write_run`` writes ranks
in that order and each score as the shortest text that reads back as the same float64
(``repr``), so evaluating the written file with ``ir_measures`` or ``trec_eval`` sees exactly the
scores the metrics were computed from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

Run = Mapping[str, Mapping[str, float]]


def ranked(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """``(docid, score)`` in trec_eval's order: score descending, then docid descending."""
    return sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)


def top_k(run: Run, k: int) -> dict[str, dict[str, float]]:
    """The first ``k`` documents of every query's ranking."""
    return {qid: dict(ranked(docs)[:k]) for qid, docs in run.items()}


def write_run(path: str, run: Run, *, tag: str = "capreolus_opt") -> str:
    """Writes ``run`` as ``qid Q0 docid rank score tag`` lines (queries in sorted order); the file
    appears complete or not at all (written to a temporary name, then renamed)."""
    if not tag or any(c.isspace() for c in tag):
        raise ValueError(f"tag must be a non-empty word without spaces. Received: {tag!r}")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for qid in sorted(run):
                for rank, (docid, score) in enumerate(ranked(run[qid]), start=1):
                    f.write(f"{qid} Q0 {docid} {rank} {float(score)!r} {tag}\n")
        os.replace(tmp, path)
    except BaseException:
        # Nothing half-written stays behind: not the temporary file (a full disk, `path` a
        # folder that os.replace refuses), not a partial `path`.
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise
    return path


def _minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def interpolate(rerank: Run, first_stage: Run, weight: float) -> dict[str, dict[str, float]]:
    """``weight * first_stage + (1 - weight) * rerank`` after min-max normalising both scores
    within each query (Capreolus's interpolation); documents missing from ``first_stage``
    count as its lowest score."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1]. Received: {weight!r}")
    out = {}
    for qid, docs in rerank.items():
        ids = list(docs)
        model = _minmax(np.array([docs[d] for d in ids], np.float64))
        base_scores = first_stage.get(qid, {})
        floor = min(base_scores.values(), default=0.0)
        base = _minmax(np.array([base_scores.get(d, floor) for d in ids], np.float64))
        mixed = weight * base + (1.0 - weight) * model
        out[qid] = {d: float(s) for d, s in zip(ids, mixed, strict=True)}
    return out


def write_qrels(path: str, qrels: Mapping[str, Mapping[str, int]]) -> str:
    """Writes ``qid 0 docid rel`` lines (queries and documents sorted)."""

    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for qid in sorted(qrels):
            f.writelines(f"{qid} 0 {d} {rel}\n" for d, rel in sorted(qrels[qid].items()))
    os.replace(tmp, path)
    return path
