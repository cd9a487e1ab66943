"""Training vs evaluation speed on TREC data, and evaluation's share of a default run.

    python benchmarks/trec_training.py                 # 400 queries, top 100, default model
    python benchmarks/trec_training.py --quick         # small sizes (a smoke check)

A generated collection (``data/trec/generate.py``) with ``--queries`` queries (80/10/10 seeded
split) and ``--top-k`` candidates each is trained with ``gin_configs/trec_reranker.gin``'s model
and batch sizes (hidden 128, 2 layers, query/document 32/256 tokens, batch 32, eval batch 256)
for ``2 * M`` steps with an evaluation after step ``M`` and at the end. Timestamps taken by the
metrics sink separate the phases, so both are measured warm (after tracing):

- training: the ``M`` steps between the first evaluation and the last training log;
- evaluation: the final evaluation (scoring every dev and test candidate, trec_eval metrics
  with ir_measures, interpolation off, run files and per-query metrics written, best model
  saved), from the last training log to the end of ``train()``.

Printed: training triples/s, evaluation pairs/s, and the share of wall time that evaluation
takes in the default schedule of ``trec_reranker.gin`` (2000 steps, an evaluation every 500:
4 evaluations). Target: <= 15%.

Measured on the shared 2-core CPU (load average ~13, so absolute speeds are several times too
slow; the ratio is what matters), ``--queries 200 --top-k 100 --steps 8``: 3.3 training
triples/s, 32.3 evaluation pairs/s (3999 pairs in 124 s), evaluation 2.5% of a default run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = 0.15
DEFAULT_STEPS, DEFAULT_EVALS = 2000, 4


class TimingSink:
    def __init__(self) -> None:
        self.events: list[tuple[float, int, str]] = []

    def log_metrics(self, step, metrics) -> None:
        kind = "eval" if any(k.startswith("eval/") for k in metrics) else "train"
        self.events.append((time.perf_counter(), step, kind))

    def flush(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20, help="M: steps per phase")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.queries, args.top_k, args.steps = 60, 30, 6
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from capreolus_opt.data.trec.data import TrecRerankingData
    from capreolus_opt.data.trec.generate import generate_trec_collection
    from capreolus_opt.models.reranker import RerankingTask
    from capreolus_opt.optimizer import AdamMultilr
    from capreolus_opt.training import make_strategy, train

    with tempfile.TemporaryDirectory() as tmp:
        paths = generate_trec_collection(
            tmp, num_queries=args.queries, docs_per_query=10, run_depth=args.top_k,
            extra_documents=args.queries * args.top_k, doc_words=(150, 300),
        )  # fmt: skip
        data = TrecRerankingData(
            collection=paths["collection"], topics=paths["topics"], qrels=paths["qrels"],
            first_stage_run=paths["run"], top_k=args.top_k, max_query_length=32,
            max_doc_length=256, cache_dir=os.path.join(tmp, "cache"),
        )  # fmt: skip
        task = RerankingTask(
            data=data, hidden_dim=128, num_layers=2, num_heads=4, intermediate_dim=256,
            loss="softmax", eval_batch_size=256,
        )  # fmt: skip
        pairs = len(data.eval_pairs())
        sink = TimingSink()
        m = args.steps
        start = time.perf_counter()
        train(
            task=task, optimizer=lambda: AdamMultilr(learning_rate=1e-3),
            strategy=make_strategy("default"), workdir=os.path.join(tmp, "w"),
            num_steps=2 * m, global_batch_size=32, seed=0, metrics_every=m, eval_every=m,
            sink=sink, progress=False,
        )  # fmt: skip
        end = time.perf_counter()
    times = {(step, kind): t for t, step, kind in sink.events}
    train_s = (times[(2 * m, "train")] - times[(m, "eval")]) / m
    eval_s = end - times[(2 * m, "train")]
    first_eval = times[(m, "eval")] - times[(m, "train")]
    share = DEFAULT_EVALS * eval_s / (DEFAULT_STEPS * train_s + DEFAULT_EVALS * eval_s)
    print(f"queries {args.queries} (dev+test pairs per evaluation: {pairs}), top_k {args.top_k}")
    print(f"training:   {32 / train_s:8.1f} triples/s ({train_s * 1000:.0f} ms per step of 32)")
    print(f"evaluation: {pairs / eval_s:8.1f} pairs/s ({eval_s:.2f} s per evaluation, warm; "
          f"first with tracing {first_eval:.2f} s)")  # fmt: skip
    print(f"whole benchmark: {end - start:.1f} s")
    verdict = "meets" if share <= TARGET else "MISSES"
    print(
        f"evaluation share of a default trec_reranker.gin run ({DEFAULT_STEPS} steps, "
        f"{DEFAULT_EVALS} evaluations): {share:.1%} ({verdict} the target <= {TARGET:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
