"""Subprocess entry for the multi-worker and signal tests: train the RegressionTask.

    python run_regression_training.py --kind multi_worker --workdir D --num-steps 6 --out r.json

The strategy is created first: MultiWorkerMirroredStrategy must exist before other TF work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `tests.`

from capreolus_opt.training import ListSink, make_strategy, train


class MarkerSink(ListSink):
    """Creates `marker` once the first metrics arrive (the test then knows training runs)."""

    def __init__(self, marker: str | None) -> None:
        super().__init__()
        self.marker = marker

    def log_metrics(self, step, metrics):
        super().log_metrics(step, metrics)
        if self.marker and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(step))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", default="default")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--num-steps", type=int, required=True)
    parser.add_argument("--metrics-every", type=int, default=2)
    parser.add_argument("--marker")
    parser.add_argument("--out")
    args = parser.parse_args()
    strategy = make_strategy(args.kind)

    from tests.training.regression_task import RegressionTask
    from tests.training.test_train_loop import (  # after the strategy: imports TF work
        BATCH,
        adam_multilr,
    )

    sink = MarkerSink(args.marker)
    result = train(
        task=RegressionTask(),
        optimizer=adam_multilr,
        strategy=strategy,
        workdir=args.workdir,
        num_steps=args.num_steps,
        global_batch_size=BATCH,
        seed=3,
        progress=False,
        metrics_every=args.metrics_every,
        sink=sink,
    )
    if args.out:
        record = {
            "final_step": result.final_step,
            "eval_metrics": result.eval_metrics,
            "checkpoint_path": result.checkpoint_path,
            "strategy_summary": result.strategy_summary,
            "logged_steps": sorted({s for s, _, _ in sink.records}),
        }
        Path(args.out).write_text(json.dumps(record))


if __name__ == "__main__":
    main()
