"""An ``ir_datasets`` id as the source of a TREC reranking experiment (optional package).

``ir_datasets_files(id)`` writes the dataset's documents, queries, judgments and (when it has
them) first-stage results once into the cache as the standard files this package reads:

- ``collection.jsonl``: ``{"id": doc_id, "text": ...}`` per document, the text being the
  document's ``default_text()`` (ir_datasets' own choice of fields, e.g. title and body);
- ``topics.tsv``: ``qid<TAB>text``, the query's ``topic_field`` (``title``, ``description``...)
  when it has that field, else its ``default_text()``; tabs and newlines become spaces;
- ``qrels.txt``: ``qid 0 docid rel``;
- ``first_stage.run``: the dataset's ``scoreddocs`` as a TREC run (tag ``ir_datasets``), when
  it has them; without them BM25 over the collection builds the candidates, as for files.

The folder is ``<cache>/ir_datasets/<id>-<digest>/``, keyed by the id, ``topic_field`` and the
ir_datasets version, and written under a temporary name then renamed, so an interrupted
conversion is never mistaken for a finished one. Remove the folder to convert again (e.g. after
re-registering a local dataset under the same id). Fetching the dataset itself is ir_datasets'
business: a hub id downloads on first use where the machine has internet; a dataset registered
from local files (``ir_datasets.registry.register``) needs none.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from capreolus_opt.data.trec.store import build_cache_folder, default_cache_dir

_VERSION = "1"
_SPACE = re.compile(r"\s+")


def _module() -> Any:
    from capreolus_opt.optional import MissingExtraError, require

    try:
        return require("ir_datasets", "irds")
    except MissingExtraError as exc:  # an input error (exit 2), as a missing file would be
        raise ValueError(f"TrecRerankingData.dataset needs ir_datasets: {exc}") from None


def _load(dataset_id: str) -> Any:
    ir_datasets = _module()
    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        raise ValueError(
            f"dataset {dataset_id!r} is not an ir_datasets id known here (see "
            "ir_datasets.registry; a local dataset must be registered before the run)"
        ) from None


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _check_id(kind: str, value: str) -> str:
    if not value or _SPACE.search(value):
        raise ValueError(f"a {kind} id of the dataset is empty or has whitespace: {value!r}")
    return value


def _query_text(query: Any, field: str) -> str:
    value = getattr(query, field, None)
    if isinstance(value, str) and value.strip():
        return value
    return query.default_text()


def _write(folder: str, ds: Any, dataset_id: str, topic_field: str) -> dict[str, str]:
    missing = [n for n in ("docs", "queries", "qrels") if not getattr(ds, f"has_{n}")()]
    if missing:
        raise ValueError(
            f"dataset {dataset_id!r} has no {' or '.join(missing)}: a reranking experiment needs "
            "documents, queries and judgments (pick a subset id with all three, or give files)"
        )
    names = {
        "collection": "collection.jsonl",
        "topics": "topics.tsv",
        "qrels": "qrels.txt",
    }
    with open(os.path.join(folder, names["collection"]), "w", encoding="utf-8") as f:
        for doc in ds.docs_iter():
            record = {"id": _check_id("document", doc.doc_id), "text": doc.default_text()}
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(os.path.join(folder, names["topics"]), "w", encoding="utf-8") as f:
        for query in ds.queries_iter():
            text = _clean(_query_text(query, topic_field))
            f.write(f"{_check_id('query', query.query_id)}\t{text}\n")
    with open(os.path.join(folder, names["qrels"]), "w", encoding="utf-8") as f:
        for qrel in ds.qrels_iter():
            qid, docid = _check_id("query", qrel.query_id), _check_id("document", qrel.doc_id)
            f.write(f"{qid} 0 {docid} {int(qrel.relevance)}\n")
    if ds.has_scoreddocs():
        names["first_stage_run"] = "first_stage.run"
        ranks: dict[str, int] = {}
        with open(os.path.join(folder, names["first_stage_run"]), "w", encoding="utf-8") as f:
            for doc in ds.scoreddocs_iter():
                qid = _check_id("query", doc.query_id)
                ranks[qid] = ranks.get(qid, 0) + 1
                docid = _check_id("document", doc.doc_id)
                f.write(f"{qid} Q0 {docid} {ranks[qid]} {float(doc.score)!r} ir_datasets\n")
    return names


def ir_datasets_files(
    dataset_id: str, *, cache_dir: str | None = None, topic_field: str = "title"
) -> dict[str, str]:
    """``{"collection", "topics", "qrels"[, "first_stage_run"]: path}`` of ``dataset_id``'s
    files, converted on first use (module docstring).

    Raises:
        ValueError: ir_datasets is not installed, the id is unknown, the dataset lacks
            documents, queries or judgments, or ir_datasets failed to read or fetch it.
    """
    ir_datasets = _module()
    key = "|".join([_VERSION, dataset_id, topic_field, ir_datasets.__version__])
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_id)[:80]
    root = os.path.join(cache_dir or default_cache_dir(), "ir_datasets")
    folder = os.path.join(root, f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:12]}")
    meta_path = os.path.join(folder, "meta.json")
    if not os.path.isfile(meta_path):
        ds = _load(dataset_id)

        def build(tmp: str) -> dict[str, Any]:
            try:
                names = _write(tmp, ds, dataset_id, topic_field)
            except OSError as err:  # a failed download (no network), an unreadable source file
                raise ValueError(
                    f"ir_datasets could not provide dataset {dataset_id!r}: {err}"
                ) from None
            return {"key": key, "dataset": dataset_id, "files": names}

        build_cache_folder(folder, build)
    with open(meta_path, encoding="utf-8") as f:
        names = json.load(f)["files"]
    return {kind: os.path.join(folder, name) for kind, name in names.items()}
