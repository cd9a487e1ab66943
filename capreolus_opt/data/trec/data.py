"""``TrecRerankingData``: a collection, topics, qrels, a first-stage run and folds as ranking data.

Label rules (what the README's "Real collections" section states for users):

- the candidates of a query are the top ``top_k`` documents of the first-stage run (by score,
  trec_eval's order), or of a BM25 run over the collection when no run is given;
- a candidate's label is its qrels relevance (rel > 0 = relevant, the nDCG gain); an unjudged
  candidate is non-relevant (label 0), as in Capreolus;
- training triples: for every train query with at least one relevant and one non-relevant
  candidate, ``samples_per_query`` (query, relevant, non-relevant) triples drawn uniformly from
  its candidates with a generator seeded by ``seed`` (Capreolus' triplet sampler, drawn once);
  or, with ``train_triples``, the lines of an MS MARCO-style triples file (``triples_format``
  ``"ids"``: ``qid<TAB>pos docid<TAB>neg docid``; ``"text"``: the three texts);
- evaluation: every candidate of the dev queries, then of the test queries; the metrics use the
  full qrels (trec_eval semantics, ``measures.py``).

The inputs are files (``collection``, ``topics``, ``qrels``, optional ``first_stage_run`` and
``folds``) or ``dataset``, an ``ir_datasets`` id whose files are written once into the cache
(``irds.py``; files given beside it win). Text is encoded with a word-level vocabulary built
from the collection (or read from ``vocab_path``), or with ``tokenizer``: a pretrained BERT's own
WordPiece (``models.bert.bert_wordpiece_tokenizer``), so its ids are the preset's.

Lengths: ``max_query_length`` / ``max_doc_length`` are token counts, or ``"auto"``: the
``length_percentile`` (95) of the collection's own tokenised lengths (the queries of the folds;
the first-stage candidates), rounded up to a multiple of 8 and capped by the model's
``max_positions`` (512) as ``length_budget`` packs them (``LengthRule``). The chosen values are
in the run info (``truncation``: ``max_query_length``, ``max_doc_length`` and the
p50/p90 lengths). With an ``"auto"`` document length the tokenised collection is cached at the
cap (a prefix of it is read), so choosing does not tokenise twice.

Inputs are read, checked and tokenised once per process for the same arguments (so
``validate_inputs()`` before a run and the run itself share the work); the tokenised collection
is cached on disk across processes (``store.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Any

import numpy as np

from capreolus_opt.data.errors import DataError
from capreolus_opt.data.ranking_data import EvalPairs, TrainTriples
from capreolus_opt.data.tokenizer import Vocabulary
from capreolus_opt.data.trec.inputs import TrecInputs, load_inputs
from capreolus_opt.data.trec.irds import ir_datasets_files
from capreolus_opt.data.trec.store import TokenizedCollection, tokenized_collection
from capreolus_opt.data.trec.triples import read_train_triples, sample_triples
from capreolus_opt.data.trec.vocab import collection_vocabulary

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EvalIndex:
    """What each evaluation pair is: ``split`` ("dev"/"test"), query and document ids and the
    first-stage score, aligned with ``eval_pairs()``."""

    split: np.ndarray
    qid: list[str]
    docid: list[str]
    first_stage_score: np.ndarray


@dataclasses.dataclass
class _Loaded:
    inputs: TrecInputs
    encoder: Any
    store: TokenizedCollection
    triples: TrainTriples
    pairs: EvalPairs
    index: EvalIndex
    truncation: dict[str, float]


AUTO = "auto"
_AUTO_HINT = {
    "max_query_length": ' or "auto"',
    "max_doc_length": ' or "auto"',
}
LENGTH_BUDGETS = ("pair", "separate")


def check_length_rule(percentile: object, max_positions: object, budget: object) -> None:
    """Refuses a percentile outside (0, 100] and an unknown budget, naming the value."""
    if (
        isinstance(percentile, bool)
        or not isinstance(percentile, int | float)
        or not (0 < percentile <= 100)
    ):
        raise ValueError(f"length_percentile must be in (0, 100]. Received: {percentile!r}")
    if budget not in LENGTH_BUDGETS:
        raise ValueError(f"length_budget must be one of {LENGTH_BUDGETS}. Received: {budget!r}")
    if max_positions < (4 if budget == "pair" else 3):
        raise ValueError(f"max_positions={max_positions} leaves no room for the text")


@dataclasses.dataclass(frozen=True)
class LengthRule:
    """How ``"auto"`` lengths are chosen: the ``percentile`` of the tokenised lengths (queries of
    the folds; first-stage candidate documents), rounded up to a multiple of 8, within the
    model's ``max_positions``: ``[CLS] q [SEP] d [SEP]`` (``budget="pair"``, a cross-encoder)
    or ``[CLS] text [SEP]`` for each side (``"separate"``, a dual encoder)."""

    percentile: float
    max_positions: int
    budget: str

    def __str__(self) -> str:
        budget = f"{self.budget} within {self.max_positions}"
        return f"p{self.percentile:g} of tokenised lengths, {budget}"

    def _pick(self, lengths, cap: int) -> int:
        lengths = np.asarray(lengths, np.float64)
        wanted = int(np.ceil(np.percentile(lengths, self.percentile))) if lengths.size else 1
        return int(min(cap, max(8, -(-wanted // 8) * 8)))

    def query_length(self, lengths) -> int:
        """Query tokens kept (a pair keeps room for at least as many document tokens)."""
        cap = (self.max_positions - 3) // 2 if self.budget == "pair" else self.max_positions - 2
        return self._pick(lengths, cap)

    def document_cap(self, query_length: int) -> int:
        """The most document tokens the model has room for beside ``query_length``."""
        if self.budget == "pair":
            return self.max_positions - 3 - query_length
        return self.max_positions - 2

    def document_length(self, lengths, query_length: int) -> int:
        return self._pick(lengths, self.document_cap(query_length))


class TrecRerankingData:
    """Reranking data from standard IR files (see the module docstring and the README)."""

    def __init__(
        self,
        *,
        collection: str | None = None,
        topics: str | None = None,
        qrels: str | None = None,
        first_stage_run: str | None = None,
        dataset: str | None = None,
        tokenizer: Any = None,
        folds: str | None = None,
        top_k: int = 100,
        train_triples: str | None = None,
        triples_format: str = "ids",
        samples_per_query: int = 16,
        seed: int = 0,
        split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        topic_field: str = "title",
        max_query_length: int | str = 16,
        max_doc_length: int | str = 128,
        length_percentile: float = 95.0,
        max_positions: int = 512,
        length_budget: str = "pair",
        vocab_path: str | None = None,
        min_count: int = 1,
        max_vocab_size: int | None = 30000,
        cache_dir: str | None = None,
        bm25_k1: float = 0.9,
        bm25_b: float = 0.4,
        truncation_warning: float = 0.05,
    ) -> None:
        for name, value in (
            ("top_k", top_k),
            ("samples_per_query", samples_per_query),
            ("max_query_length", max_query_length),
            ("max_doc_length", max_doc_length),
            ("max_positions", max_positions),
        ):
            if value == AUTO and name.startswith("max_") and name != "max_positions":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} must be a positive integer{_AUTO_HINT.get(name, '')}. "
                    f"Received: {value!r}"
                )
        check_length_rule(length_percentile, max_positions, length_budget)
        if triples_format not in ("ids", "text"):
            raise ValueError(
                f"triples_format must be 'ids' or 'text'. Received: {triples_format!r}"
            )
        if tokenizer is not None and vocab_path is not None:
            raise ValueError("Give TrecRerankingData a tokenizer or a vocab_path, not both.")
        if dataset is not None and (not isinstance(dataset, str) or not dataset):
            raise ValueError(
                f"dataset must be an ir_datasets id (a non-empty str). Received: {dataset!r}"
            )
        unset = [n for n, v in (("collection", collection), ("topics", topics), ("qrels", qrels))
                 if not v]  # fmt: skip
        if unset and dataset is None:
            raise ValueError(
                f"TrecRerankingData needs {', '.join(unset)}: give the files, or dataset (an "
                "ir_datasets id) to read them from"
            )
        fractions = tuple(float(f) for f in split_fractions)
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(
                f"split_fractions must be 3 fractions (train, dev, test) summing to 1. "
                f"Received: {split_fractions!r}"
            )
        self.config = dict(
            collection=collection, topics=topics, qrels=qrels, first_stage_run=first_stage_run,
            dataset=dataset, tokenizer=tokenizer, folds=folds, top_k=top_k,
            train_triples=train_triples, triples_format=triples_format,
            samples_per_query=samples_per_query, seed=seed, split_fractions=fractions,
            topic_field=topic_field, max_query_length=max_query_length,
            max_doc_length=max_doc_length, length_percentile=float(length_percentile),
            max_positions=max_positions, length_budget=length_budget,
            vocab_path=vocab_path, min_count=min_count,
            max_vocab_size=max_vocab_size, cache_dir=cache_dir, bm25_k1=bm25_k1, bm25_b=bm25_b,
            truncation_warning=truncation_warning,
        )  # fmt: skip
        self.max_query_length = max_query_length
        self.max_doc_length = max_doc_length

    # --- loading -------------------------------------------------------------------------
    @functools.cached_property
    def _loaded(self) -> _Loaded:
        key = _memo_key(self.config)
        if key not in _MEMO:
            _MEMO.clear()  # one experiment's inputs at a time
            _MEMO[key] = _load(**self.config)
        return _MEMO[key]

    def validate_inputs(self) -> None:
        """Reads, checks and tokenises every input now; raises ``DataError`` naming FILE:LINE."""
        self._loaded  # noqa: B018 -- the property does the work

    # --- RankingData --------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._loaded.encoder)

    @property
    def pad_id(self) -> int:
        return int(self._loaded.encoder.pad_id)

    @property
    def encoder(self) -> Any:
        return self._loaded.encoder

    def train_triples(self) -> TrainTriples:
        return self._loaded.triples

    def eval_pairs(self) -> EvalPairs:
        return self._loaded.pairs

    # --- TREC extras (used by the reranking task's evaluation) ----------------------------
    def eval_index(self) -> EvalIndex:
        return self._loaded.index

    @property
    def qrels(self) -> dict[str, dict[str, int]]:
        return self._loaded.inputs.qrels

    @property
    def folds(self) -> dict[str, list[str]]:
        return self._loaded.inputs.folds

    def truncation_stats(self) -> dict[str, float]:
        """Share of queries / documents longer than their maximum length, and their lengths."""
        return dict(self._loaded.truncation)


_MEMO: dict[tuple, _Loaded] = {}


def _memo_key(config: dict) -> tuple:
    files = [config[k] for k in ("collection", "topics", "qrels", "first_stage_run", "folds")]
    files += [config["train_triples"], config["vocab_path"]]
    stamps = tuple(
        (f, os.stat(f).st_mtime_ns, os.stat(f).st_size) if f and os.path.isfile(f) else (f,)
        for f in files
    )
    return (tuple(sorted((k, repr(v)) for k, v in config.items())), stamps)


def _encoder(config: dict) -> Any:
    if config["tokenizer"] is not None:  # e.g. a pretrained BERT's own WordPiece
        return config["tokenizer"]
    if config["vocab_path"]:
        try:
            return Vocabulary.from_file(config["vocab_path"])
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(config["vocab_path"], None, f"cannot be read: {err}") from None
    return collection_vocabulary(
        config["collection"],
        min_count=config["min_count"],
        max_size=config["max_vocab_size"],
        cache_dir=config["cache_dir"],
    )


def _load(**config: Any) -> _Loaded:
    if config["dataset"] is not None:  # files the user gave win over the dataset's
        files = ir_datasets_files(
            config["dataset"], cache_dir=config["cache_dir"], topic_field=config["topic_field"]
        )
        for name in ("collection", "topics", "qrels", "first_stage_run"):
            config[name] = config[name] or files.get(name)
    inputs = load_inputs(
        topics=config["topics"], qrels=config["qrels"], first_stage_run=config["first_stage_run"],
        folds=config["folds"], collection=config["collection"], k=config["top_k"],
        seed=config["seed"], split_fractions=config["split_fractions"],
        topic_field=config["topic_field"], need_train=not config["train_triples"],
        bm25={"k1": config["bm25_k1"], "b": config["bm25_b"]},
    )  # fmt: skip
    encoder = _encoder(config)
    rule = LengthRule(config["length_percentile"], config["max_positions"], config["length_budget"])
    lq = config["max_query_length"]
    if lq == AUTO:
        qids = [q for split in inputs.folds.values() for q in split]
        lengths = [encoder.encode_with_length(inputs.topics[q], max_length=1)[1] for q in qids]
        lq = rule.query_length(lengths)
    ld = config["max_doc_length"]
    stored = rule.document_cap(lq) if ld == AUTO else ld
    store = tokenized_collection(
        config["collection"], encoder=encoder, max_length=stored, cache_dir=config["cache_dir"]
    )
    rows = _candidate_rows(inputs, store, config["first_stage_run"] or "BM25 run")
    if ld == AUTO:  # the candidates' own lengths: what is trained on and scored
        candidates = np.unique(np.concatenate(list(rows.values())).astype(np.int64))
        ld = rule.document_length(np.asarray(store.lengths[candidates]), lq)
        store = store.narrowed(ld)
    if AUTO in (config["max_query_length"], config["max_doc_length"]):
        log.info("lengths from the collection (%s): max_query_length=%d, max_doc_length=%d",
                 rule, lq, ld)  # fmt: skip
    if config["train_triples"]:
        triples, doc_rows = read_train_triples(
            config["train_triples"], config["triples_format"], inputs.topics, store, encoder, lq
        )
    else:
        triples, doc_rows = sample_triples(
            inputs, rows, store, encoder, lq, config["samples_per_query"], config["seed"]
        )
    pairs, index = _eval_pairs(inputs, rows, store, encoder, lq)
    truncation = _truncation(inputs, rows, doc_rows, store, encoder, lq, ld)
    _warn_truncation(truncation, config["truncation_warning"])
    return _Loaded(inputs, encoder, store, triples, pairs, index, truncation)


def _candidate_rows(
    inputs: TrecInputs, store: TokenizedCollection, run_name: str
) -> dict[str, np.ndarray]:
    rows = {}
    for qid, docs in inputs.run.items():
        ids = list(docs)
        found = store.rows(ids)
        if (found < 0).any():
            missing = ids[int(np.argmax(found < 0))]
            raise DataError(
                run_name, None, f"{int((found < 0).sum())} candidates of query {qid!r} are not "
                f"in the collection {store.path}, e.g. {missing!r}"
            )  # fmt: skip
        rows[qid] = found
    return rows


def _eval_pairs(
    inputs: TrecInputs,
    rows: dict[str, np.ndarray],
    store: TokenizedCollection,
    encoder: Any,
    lq: int,
) -> tuple[EvalPairs, EvalIndex]:
    splits, qids, docids, scores, labels, qnum, doc_rows = [], [], [], [], [], [], []
    queries = []
    for split in ("dev", "test"):
        for qid in inputs.folds[split]:
            docs = inputs.run.get(qid, {})
            judged = inputs.qrels.get(qid, {})
            number = len(queries)
            queries.append(encoder.encode_with_length(inputs.topics[qid], max_length=lq)[0])
            for (docid, score), row in zip(docs.items(), rows.get(qid, []), strict=True):
                splits.append(split)
                qids.append(qid)
                docids.append(docid)
                scores.append(score)
                labels.append(max(judged.get(docid, 0), 0))
                qnum.append(number)
                doc_rows.append(row)
    qnum = np.array(qnum, np.int32)
    pairs = EvalPairs(
        qid=qnum,
        query=np.stack(queries)[qnum],
        document=np.asarray(store.tokens[np.array(doc_rows, np.int64)]),
        label=np.array(labels, np.int32),
    )
    index = EvalIndex(np.array(splits), qids, docids, np.array(scores, np.float64))
    return pairs, index


def _truncation(
    inputs: TrecInputs,
    rows: dict[str, np.ndarray],
    doc_rows: np.ndarray,
    store: TokenizedCollection,
    encoder: Any,
    lq: int,
    ld: int,
) -> dict[str, float]:
    qids = [q for split in inputs.folds.values() for q in split]
    qlen = np.array([encoder.encode_with_length(inputs.topics[q], max_length=lq)[1] for q in qids])
    all_rows = np.unique(np.concatenate([*rows.values(), doc_rows]).astype(np.int64))
    dlen = np.asarray(store.lengths[all_rows])
    return {
        "queries": float(len(qlen)),
        "queries_truncated": float(np.mean(qlen > lq)),
        "query_length_p50": float(np.median(qlen)),
        "query_length_p90": float(np.percentile(qlen, 90)),
        "max_query_length": float(lq),
        "documents": float(len(dlen)),
        "documents_truncated": float(np.mean(dlen > ld)),
        "document_length_p50": float(np.median(dlen)),
        "document_length_p90": float(np.percentile(dlen, 90)),
        "max_doc_length": float(ld),
    }


_LIMITS = {
    "queries": ("max_query_length", "query_length_p90"),
    "documents": ("max_doc_length", "document_length_p90"),
}


def _warn_truncation(stats: dict[str, float], threshold: float) -> None:
    for kind, (limit, p90) in _LIMITS.items():
        share = stats[f"{kind}_truncated"]
        if share > threshold:
            log.warning(
                "%.1f%% of %s are longer than %s=%d tokens and are cut (90th percentile: %d "
                "tokens); raise it, or accept the loss",
                100 * share, kind, limit, stats[limit], stats[p90],
            )  # fmt: skip
