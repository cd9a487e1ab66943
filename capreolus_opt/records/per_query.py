"""Per-query metric values of a run, read from its ``per_query_<split>.tsv`` artifact.

Contract (docs/ARCHITECTURE.md, "Per-query metrics"): a run evaluated on a collection with
query ids stores, for each evaluated split, an artifact named ``per_query_<split>.tsv``
(``per_query_dev.tsv``, ``per_query_test.tsv``, ``per_query_eval.tsv``) holding UTF-8 lines
``qid<TAB>measure<TAB>value`` -- the per-query output of ``ir_measures`` -- with an optional
header line ``qid<TAB>measure<TAB>value``. Rows whose qid is ``all`` (trec_eval's aggregate) are
ignored. The run's metric ``<split>/<measure>`` (``test/nDCG@10``) then has per-query values:
:meth:`Run.per_query` returns ``{qid: value}``; measures match exactly, else case-insensitively
(``test/ndcg@10`` finds ``nDCG@10``).

Where the bytes live depends on the observer (Sacred 0.8.7): FileStorage copies an artifact
into the run folder and lists its name in ``run.json["artifacts"]``; the SQL observer stores it as
a blob in the ``artifact`` table (``filename``, ``content``, ``run_id -> run.run_id``); MongoDB
puts it in GridFS and lists ``{"name", "file_id"}`` in the run document's ``artifacts``. The
readers attach :class:`ArtifactAccess` to each run; contents are read only when asked for.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

PREFIX = "per_query_"


class PerQueryError(ValueError):
    """A per-query artifact exists but does not follow the contract."""


@dataclasses.dataclass
class ArtifactAccess:
    """The names of a run's artifacts and a function reading one's bytes (lazily, cached)."""

    names: list[str]
    read: Callable[[str], bytes]
    _tables: dict[str, dict[str, dict[str, float]]] = dataclasses.field(
        default_factory=dict, repr=False
    )

    def table(self, name: str) -> dict[str, dict[str, float]] | None:
        """``{measure: {qid: value}}`` of per-query artifact ``name``; None when absent."""
        if name not in self.names:
            return None
        if name not in self._tables:
            try:
                data = self.read(name)
            except OSError as exc:
                raise PerQueryError(f"artifact {name!r} is listed but unreadable: {exc}") from exc
            self._tables[name] = parse_per_query(data, name)
        return self._tables[name]


def artifact_name(metric: str) -> tuple[str, str] | None:
    """``("per_query_<split>.tsv", measure)`` for a metric ``<split>/<measure>``, else None."""
    split, sep, measure = metric.partition("/")
    if not sep or not split or not measure or split == "group":
        return None
    return f"{PREFIX}{split}.tsv", measure


def parse_per_query(data: bytes, name: str = "per_query.tsv") -> dict[str, dict[str, float]]:
    """Parse ``qid<TAB>measure<TAB>value`` lines into ``{measure: {qid: value}}``.

    Raises:
        PerQueryError: naming the artifact and line for a row without three tab-separated
            fields, a non-numeric value, or a (qid, measure) given twice.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PerQueryError(f"artifact {name!r} is not UTF-8 text: {exc}") from exc
    out: dict[str, dict[str, float]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 3:
            raise PerQueryError(
                f"{name} line {number}: expected 'qid<TAB>measure<TAB>value', got {line!r}"
            )
        qid, measure, value = (f.strip() for f in fields)
        if number == 1 and (qid, measure, value) == ("qid", "measure", "value"):
            continue
        if qid == "all":
            continue
        try:
            number_value = float(value)
        except ValueError:
            raise PerQueryError(f"{name} line {number}: value {value!r} is not a number") from None
        by_qid = out.setdefault(measure, {})
        if qid in by_qid:
            raise PerQueryError(f"{name} line {number}: query {qid!r} has {measure} twice")
        by_qid[qid] = number_value
    return out


def lookup(table: dict[str, dict[str, float]], measure: str) -> dict[str, float] | None:
    """The values of ``measure`` (exact name, else the only case-insensitive match)."""
    if measure in table:
        return table[measure]
    folded = [m for m in table if m.lower() == measure.lower()]
    return table[folded[0]] if len(folded) == 1 else None


def group_means(per_run: list[dict[str, float]]) -> dict[str, float]:
    """Per-query mean over several runs (seeds) of one setting, on the qids all runs have."""
    if not per_run:
        return {}
    common = set(per_run[0]).intersection(*per_run[1:])
    return {qid: math.fsum(r[qid] for r in per_run) / len(per_run) for qid in sorted(common)}
