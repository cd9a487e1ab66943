"""Reading and checking the inputs of a TREC reranking experiment (before anything is tokenised).

``load_inputs`` reads topics, qrels, the first-stage run (or builds one with BM25), keeps each
query's top ``k`` candidates and resolves the folds: from a JSON file, or a split seeded by
``seed`` over the queries that have judgments and candidates. Every problem is a ``DataError``
naming the file (and line, for a malformed line):

- a query of a fold that is not in the topics file;
- a dev or test split in which no query has a relevant (rel > 0) candidate: every metric would
  be 0.0;
- a train split without a query that has both a relevant and a non-relevant candidate (unless
  MS MARCO-style triples are given).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from capreolus_opt.data.errors import DataError
from capreolus_opt.data.trec.formats import read_folds, read_qrels, read_run, read_topics
from capreolus_opt.data.trec.runfile import top_k

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrecInputs:
    topics: dict[str, str]
    qrels: dict[str, dict[str, int]]
    #: ``{qid: {docid: score}}``: the first ``k`` candidates of every query of the folds
    run: dict[str, dict[str, float]]
    folds: dict[str, list[str]]


def seeded_folds(qids: list[str], fractions: tuple[float, float, float], seed: int) -> dict:
    """A ``seed``-determined split of ``qids`` into train/dev/test of the given fractions (at
    least one query in each)."""
    if len(qids) < 3:
        raise ValueError(f"a seeded split needs at least 3 judged queries, got {len(qids)}")
    order = [qids[i] for i in np.random.default_rng(seed).permutation(len(qids))]
    n_dev = max(1, round(fractions[1] * len(qids)))
    n_test = max(1, round(fractions[2] * len(qids)))
    n_train = len(qids) - n_dev - n_test
    if n_train < 1:
        raise ValueError(f"split_fractions={fractions} leave no training query of {len(qids)}")
    return {
        "train": sorted(order[:n_train]),
        "dev": sorted(order[n_train : n_train + n_dev]),
        "test": sorted(order[n_train + n_dev :]),
    }


def _check_splits(inputs: TrecInputs, paths: dict[str, str], need_train: bool) -> None:
    for split, qids in inputs.folds.items():
        missing = [q for q in qids if q not in inputs.topics]
        if missing:
            raise DataError(
                paths["folds"] or paths["topics"], None,
                f"{len(missing)} {split} queries are not in the topics file {paths['topics']}, "
                f"e.g. {missing[0]!r}",
            )  # fmt: skip
        without = [q for q in qids if not inputs.run.get(q)]
        if without:
            log.warning(
                "%d of %d %s queries have no first-stage candidates (e.g. %r); a judged one "
                "counts 0 in the %s metrics (trec_eval -c)",
                len(without), len(qids), split, without[0], split,
            )  # fmt: skip
    for split in ("dev", "test"):
        if not any(_has(inputs, q, positive=True) for q in inputs.folds[split]):
            raise DataError(
                paths["qrels"], None,
                f"no {split} query has a relevant (rel > 0) document among its first-stage "
                "candidates: every metric would be 0.0 (wrong qrels, run or folds?)",
            )  # fmt: skip
    if need_train and not any(
        _has(inputs, q, positive=True) and _has(inputs, q, positive=False)
        for q in inputs.folds["train"]
    ):
        raise DataError(
            paths["qrels"], None,
            "no train query has both a relevant and a non-relevant first-stage candidate: "
            "no training triple can be sampled",
        )  # fmt: skip


def _has(inputs: TrecInputs, qid: str, *, positive: bool) -> bool:
    judged = inputs.qrels.get(qid, {})
    return any((judged.get(d, 0) > 0) == positive for d in inputs.run.get(qid, {}))


def load_inputs(
    *,
    topics: str,
    qrels: str,
    first_stage_run: str | None,
    folds: str | None,
    collection: str,
    k: int,
    seed: int,
    split_fractions: tuple[float, float, float],
    topic_field: str,
    bm25: dict,
    need_train: bool,
) -> TrecInputs:
    """Reads and checks the inputs (see the module docstring)."""
    topic_texts = read_topics(topics, topic_field=topic_field)
    judgments = read_qrels(qrels)
    fold_qids = read_folds(folds) if folds else None
    if first_stage_run:
        run = read_run(first_stage_run)
    else:
        from capreolus_opt.data.trec.bm25 import bm25_run

        wanted = sorted({q for s in fold_qids.values() for q in s} if fold_qids else topic_texts)
        wanted = [q for q in wanted if q in topic_texts]
        run = bm25_run(collection, topic_texts, wanted, k=k, **bm25)
    run = top_k(run, k)
    if fold_qids is None:
        judged = sorted(q for q in topic_texts if q in judgments and run.get(q))
        try:
            fold_qids = seeded_folds(judged, split_fractions, seed)
        except ValueError as err:
            raise DataError(qrels, None, str(err)) from None
    keep = {q for s in fold_qids.values() for q in s}
    inputs = TrecInputs(
        topics=topic_texts,
        qrels=judgments,
        run={q: d for q, d in run.items() if q in keep},
        folds=fold_qids,
    )
    paths = {"topics": topics, "qrels": qrels, "folds": folds}
    _check_splits(inputs, paths, need_train)
    return inputs
