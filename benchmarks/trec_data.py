"""Serving a large generated collection: tokenisation cache and peak resident memory.

    python benchmarks/trec_data.py                          # 1,000,000 documents
    python benchmarks/trec_data.py --documents 100000       # the 100k cache check only

A collection of ``--documents`` documents (``data/trec/generate.py``: 200 queries with judged
documents, the rest unjudged background documents; a first-stage run of depth 100) is written
once. Then three fresh processes, each printing its own peak RSS (``ru_maxrss``), so the
generator's memory is not counted:

1. ``cold``: ``TrecRerankingData(...).validate_inputs()`` with an empty cache: one pass to build
   the vocabulary, one to tokenise every document into the memory-mapped store;
2. ``cached``: the same in a new process: the store and vocabulary come from the cache (the
   printed ratio cold / cached is what the cache saves);
3. ``serve``: load from the cache, train 4 steps of a small reranker (best model saved), reload
   it with ``load_reranker`` and rerank the whole first-stage run (every query, top 100) with
   ``rerank_run``. Documents are read from the store by row, never held as Python strings.

Target: ``serve`` within 2 GB of resident memory at 1M documents.

Measured on the shared 2-core CPU: 1M documents (279 MB): cold load 60.5 s, cached 4.9 s
(12.3x), ``serve`` peak RSS 1.35 GiB (TensorFlow itself is ~0.6 GiB of it), reranking 19,999
pairs in 11.9 s. 100k documents: cold 194 s vs cached 24 s (8.1x, under a load average of ~13),
``serve`` 0.90 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_BYTES = 2 * 1024**3


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _data(paths: dict, cache: str):
    from capreolus_opt.data.trec.data import TrecRerankingData

    return TrecRerankingData(
        collection=paths["collection"], topics=paths["topics"], qrels=paths["qrels"],
        first_stage_run=paths["run"], top_k=100, max_query_length=16, max_doc_length=64,
        cache_dir=cache, samples_per_query=8,
    )  # fmt: skip


def phase(name: str, paths: dict, cache: str, workdir: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    data = _data(paths, cache)
    data.validate_inputs()
    out = {"phase": name, "load_s": time.perf_counter() - start}
    out["from_cache"] = bool(data._loaded.store.from_cache)
    if name == "serve":
        from capreolus_opt.models.reranker import RerankingTask
        from capreolus_opt.models.saved_reranker import load_reranker, rerank_run
        from capreolus_opt.optimizer import AdamMultilr
        from capreolus_opt.training import make_strategy, train

        task = RerankingTask(data=data, hidden_dim=16, num_layers=1, num_heads=2,
                             intermediate_dim=32, eval_batch_size=512)  # fmt: skip
        t = time.perf_counter()
        train(task=task, optimizer=lambda: AdamMultilr(learning_rate=1e-3),
              strategy=make_strategy("default"), workdir=workdir, num_steps=4,
              global_batch_size=16, seed=0, progress=False)  # fmt: skip
        out["train_s"] = time.perf_counter() - t
        t = time.perf_counter()
        scores = rerank_run(load_reranker(workdir), first_stage_run=paths["run"],
                            topics=paths["topics"], collection=paths["collection"], k=100,
                            batch_size=512, cache_dir=cache)  # fmt: skip
        out["rerank_s"] = time.perf_counter() - t
        out["reranked_pairs"] = sum(len(d) for d in scores.values())
    out["peak_rss"] = _peak_rss()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=("cold", "cached", "serve"), help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        sys.path.insert(0, str(ROOT))
        result = phase(args.phase, json.loads(args.paths), os.path.join(args.dir, "cache"),
                       os.path.join(args.dir, "w"))  # fmt: skip
        print(json.dumps(result))
        return 0
    sys.path.insert(0, str(ROOT))
    from capreolus_opt.data.trec.generate import generate_trec_collection

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        queries = 200
        paths = generate_trec_collection(
            tmp, num_queries=queries, run_depth=100,
            extra_documents=max(0, args.documents - 10 * queries), doc_words=(30, 60),
        )  # fmt: skip
        size = os.path.getsize(paths["collection"])
        print(f"generated {args.documents} documents ({size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t:.0f} s")  # fmt: skip
        results = {}
        for name in ("cold", "cached", "serve"):
            proc = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--paths", json.dumps(paths),
                 "--dir", tmp],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[name]
            extra = ""
            if name == "serve":
                extra = (f"; 4 training steps {r['train_s']:.1f} s, reranked "
                         f"{r['reranked_pairs']} pairs in {r['rerank_s']:.1f} s")  # fmt: skip
            print(f"{name:6s}: load {r['load_s']:7.1f} s (from cache: {r['from_cache']}), "
                  f"peak RSS {r['peak_rss'] / 2**20:7.0f} MiB{extra}")  # fmt: skip
    ratio = results["cold"]["load_s"] / results["cached"]["load_s"]
    print(f"tokenisation cache: a second run loads {ratio:.1f}x faster than the first")
    peak = results["serve"]["peak_rss"]
    verdict = "meets" if peak <= TARGET_BYTES else "MISSES"
    print(f"serving {args.documents} documents for training and reranking: peak RSS "
          f"{peak / 2**30:.2f} GiB ({verdict} the target <= 2 GiB)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
