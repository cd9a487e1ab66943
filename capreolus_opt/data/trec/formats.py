"""Readers for the standard IR file formats; every malformed line raises ``DataError(FILE:LINE)``.

- collection: TSV ``docid<TAB>text`` or JSONL with an id field (``id``, ``docid``, ``doc_id``,
  ``_id``) and a text field (``contents``, ``text``, ``body``; a ``title`` is prepended), one
  document per line (Pyserini's and BEIR's layouts). A ``.jsonl``/``.json`` name or a first
  character ``{`` selects JSONL.
- topics: TSV ``qid<TAB>text`` or a TREC topic file (``<top> <num> Number: 301 <title> ...``),
  chosen by the first non-blank line (``<top>``); ``topic_field`` picks ``title`` or ``desc``.
- qrels: ``qid 0 docid rel`` (whitespace-separated, integer rel; rel > 0 is relevant).
- run: ``qid Q0 docid rank score tag`` (trec_eval's input); ranked by score, not by the rank
  column, exactly as trec_eval does (see ``runfile.ranked``).
- folds: JSON ``{"train": [qids], "dev": [qids], "test": [qids]}``.
- triples: MS MARCO-style ``query<TAB>positive<TAB>negative`` as text, or as ids
  (``qid<TAB>pos_docid<TAB>neg_docid``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from capreolus_opt.data.errors import DataError, read_lines, refuse_compressed

_ID_KEYS = ("id", "docid", "doc_id", "_id")
_TEXT_KEYS = ("contents", "text", "body")
SPLITS = ("train", "dev", "test")


def _is_jsonl(path: str) -> bool:
    if path.endswith((".jsonl", ".json")):
        return True
    for _, line in read_lines(path):
        return line.lstrip().startswith("{")
    return False


def iter_collection(path: str) -> Iterator[tuple[int, str, str]]:
    """``(line, docid, text)`` for every document of a TSV or JSONL collection, in file order."""
    reader = _jsonl_documents if _is_jsonl(path) else _tsv_documents
    empty = True
    for item in reader(path):
        empty = False
        yield item
    if empty:
        raise DataError(path, None, "no documents (expected docid<TAB>text or JSONL lines)")


def _tsv_documents(path: str) -> Iterator[tuple[int, str, str]]:
    for lineno, line in read_lines(path):
        docid, sep, text = line.partition("\t")
        if not sep or not docid.strip():
            raise DataError(path, lineno, f"expected docid<TAB>text, got {line[:80]!r}")
        yield lineno, docid.strip(), text.replace("\t", " ")


def _jsonl_documents(path: str) -> Iterator[tuple[int, str, str]]:
    for lineno, line in read_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, lineno, f"not a JSON object: {err.msg}") from None
        if not isinstance(record, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(record).__name__}")
        docid = next((record[k] for k in _ID_KEYS if k in record), None)
        text = next((record[k] for k in _TEXT_KEYS if k in record), None)
        if not isinstance(docid, str | int) or str(docid).strip() == "":
            raise DataError(path, lineno, f"no document id (one of {', '.join(_ID_KEYS)})")
        if not isinstance(text, str):
            raise DataError(path, lineno, f"no text field (one of {', '.join(_TEXT_KEYS)})")
        title = record.get("title")
        if isinstance(title, str) and title.strip():
            text = f"{title} {text}"
        yield lineno, str(docid).strip(), text


def read_topics(path: str, *, topic_field: str = "title") -> dict[str, str]:
    """``{qid: query text}`` from a TSV or TREC topic file (see the module docstring)."""
    if topic_field not in ("title", "desc"):
        raise ValueError(f"topic_field must be 'title' or 'desc'. Received: {topic_field!r}")
    lines = list(read_lines(path))
    if lines and lines[0][1].lstrip().lower().startswith("<top>"):
        topics = _trec_topics(path, lines, topic_field)
    else:
        topics = {}
        for lineno, line in lines:
            qid, sep, text = line.partition("\t")
            if not sep or not qid.strip() or not text.strip():
                raise DataError(path, lineno, f"expected qid<TAB>query text, got {line[:80]!r}")
            if qid.strip() in topics:
                raise DataError(path, lineno, f"query id {qid.strip()!r} appears twice")
            topics[qid.strip()] = text.strip()
    if not topics:
        raise DataError(path, None, "no topics (expected qid<TAB>text lines or <top> blocks)")
    return topics


_TAG = re.compile(r"<(num|title|desc|narr)>", re.I)


def _trec_topics(path: str, lines: list[tuple[int, str]], field: str) -> dict[str, str]:
    topics: dict[str, str] = {}
    qid, start, current, parts = None, 0, None, {}
    for lineno, line in lines:
        low = line.strip().lower()
        if low.startswith("<top>"):
            qid, start, current, parts = None, lineno, None, {}
            continue
        if low.startswith("</top>"):
            text = " ".join(parts.get(field, [])).strip() or " ".join(parts.get("title", []))
            if qid is None or not text.strip():
                raise DataError(path, start, f"topic without <num> or <{field}> text")
            if qid in topics:
                raise DataError(path, start, f"query id {qid!r} appears twice")
            topics[qid] = text.strip()
            continue
        match = _TAG.match(line.strip())
        if match:
            current = match.group(1).lower()
            line = line.strip()[match.end() :]
            if current == "num":
                qid = re.sub(r"^\s*Number:\s*", "", line, flags=re.I).strip() or None
                continue
            if current == "desc":
                line = re.sub(r"^\s*Description:\s*", "", line, flags=re.I)
        if current in ("title", "desc"):
            parts.setdefault(current, []).append(line.strip())
    return topics


def read_qrels(path: str) -> dict[str, dict[str, int]]:
    """``{qid: {docid: rel}}`` from ``qid 0 docid rel`` lines."""
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in read_lines(path):
        fields = line.split()
        if len(fields) != 4:
            raise DataError(
                path,
                lineno,
                f"expected 4 fields 'qid 0 docid rel', got {len(fields)}: {line[:80]!r}",
            )
        try:
            rel = int(fields[3])
        except ValueError:
            raise DataError(path, lineno, f"relevance {fields[3]!r} is not an integer") from None
        qrels.setdefault(fields[0], {})[fields[2]] = rel
    if not qrels:
        raise DataError(path, None, "no judgments (expected 'qid 0 docid rel' lines)")
    return qrels


def read_run(path: str) -> dict[str, dict[str, float]]:
    """``{qid: {docid: score}}`` from a TREC run (``qid Q0 docid rank score tag``)."""
    run: dict[str, dict[str, float]] = {}
    for lineno, line in read_lines(path):
        fields = line.split()
        if len(fields) != 6:
            raise DataError(
                path,
                lineno,
                f"expected 6 fields 'qid Q0 docid rank score tag', got "
                f"{len(fields)}: {line[:80]!r}",
            )
        try:
            score = float(fields[4])
        except ValueError:
            raise DataError(path, lineno, f"score {fields[4]!r} is not a number") from None
        if score != score:
            raise DataError(path, lineno, "score is NaN")
        docs = run.setdefault(fields[0], {})
        if fields[2] in docs:
            raise DataError(path, lineno, f"document {fields[2]!r} appears twice for {fields[0]!r}")
        docs[fields[2]] = score
    if not run:
        raise DataError(path, None, "no results (expected 'qid Q0 docid rank score tag' lines)")
    return run


def read_folds(path: str) -> dict[str, list[str]]:
    """``{"train": [...], "dev": [...], "test": [...]}``: disjoint lists of query ids."""
    try:
        with open(path, "rb") as f:
            refuse_compressed(path, f.peek(8)[:8])
            folds = json.loads(f.read().decode("utf-8"))
    except OSError as err:
        raise DataError(path, None, f"cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise DataError(path, None, "not valid UTF-8") from None
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, f"not valid JSON: {err.msg}") from None
    if not isinstance(folds, dict) or set(folds) != set(SPLITS):
        got = sorted(folds) if isinstance(folds, dict) else type(folds).__name__
        raise DataError(path, None, f"expected an object with keys {list(SPLITS)}, got {got}")
    seen: dict[str, str] = {}
    for split in SPLITS:
        qids = folds[split]
        if not isinstance(qids, list) or not qids:
            raise DataError(path, None, f"{split!r} must be a non-empty list of query ids")
        for qid in map(str, qids):
            if qid in seen:
                raise DataError(path, None, f"query {qid!r} is in both {seen[qid]!r} and {split!r}")
            seen[qid] = split
    return {split: [str(q) for q in folds[split]] for split in SPLITS}


def read_triples(path: str) -> list[tuple[int, str, str, str]]:
    """``(line, query, positive, negative)`` from MS MARCO-style TSV triples (text or ids)."""
    rows = []
    for lineno, line in read_lines(path):
        fields = line.split("\t")
        if len(fields) != 3 or not all(f.strip() for f in fields):
            raise DataError(
                path,
                lineno,
                f"expected 3 non-empty tab-separated fields (query, positive, "
                f"negative), got {len(fields)}: {line[:80]!r}",
            )
        rows.append((lineno, *(f.strip() for f in fields)))
    if not rows:
        raise DataError(path, None, "no triples (expected query<TAB>positive<TAB>negative)")
    return rows
