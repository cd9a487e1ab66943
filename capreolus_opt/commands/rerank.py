"""``capreolus-opt rerank``: score a first-stage run with a trained reranker, write a TREC run.

    capreolus-opt rerank RUN --run-file FIRST_STAGE --topics FILE --collection FILE -o OUT.run
                         [--top-k 100] [--batch-size 256] [--qrels FILE] [--source DIR ...]
                         [--progress auto|bar|off]

``RUN`` is the training run's workdir, its FileStorage run folder, or its run UUID (looked up in
``--source`` observers, default ``file://runs``); its best model by the dev metric is used
(``<workdir>/best/``), with its tokenizer and lengths, and mixed with the first-stage scores
by the weight chosen on dev when training interpolated. The model runs compiled, in batches of
``--batch-size`` pairs, with a progress line and an ETA on stderr when it is a terminal. With
``--qrels`` the metrics of the written run are printed (ir_measures, as training records
them). Exit codes: 0, 2 bad input (a message naming the file and line), 1 an unexpected failure.
Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from capreolus_opt.records import exit_codes
from capreolus_opt.storage.workdir_layout import Workdir


def register(subparsers: Any) -> None:
    """Add the ``rerank`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "rerank",
        help="rerank a first-stage TREC run with a trained run's best model",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("run", metavar="RUN", help="workdir, run folder or run UUID")
    parser.add_argument("--run-file", required=True, metavar="FILE", help="first-stage TREC run")
    parser.add_argument("--topics", required=True, metavar="FILE", help="qid<TAB>text or TREC")
    parser.add_argument("--collection", required=True, metavar="FILE", help="TSV or JSONL")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="TREC run to write")
    parser.add_argument("--force", action="store_true", help="replace OUT when it already exists")
    parser.add_argument("--top-k", type=int, default=100, help="candidates per query (100)")
    parser.add_argument("--batch-size", type=int, default=256, help="pairs per model call (256)")
    parser.add_argument("--qrels", metavar="FILE", help="print the metrics of the written run")
    parser.add_argument("--tag", default="capreolus_opt", help="run tag (last column)")
    parser.add_argument("--cache-dir", default=None, help="tokenised-collection cache")
    parser.add_argument(
        "--progress", choices=("auto", "bar", "off"), default="auto",
        help="pairs scored, pairs/s and ETA on stderr (auto: when stderr is a terminal)",
    )  # fmt: skip
    parser.add_argument(
        "--source", action="append", default=None, metavar="URL",
        help="where to look up a run UUID (repeatable; default file://runs)",
    )  # fmt: skip
    parser.set_defaults(func=handle_rerank)


def _error(message: str) -> int:
    print(f"capreolus-opt rerank: error: {message}", file=sys.stderr)
    return exit_codes.INPUT


def resolve_workdir(ref: str, sources: list[str]) -> str:
    """The workdir of ``ref`` (a workdir, a FileStorage run folder or a run UUID)."""
    if os.path.isdir(Workdir(ref).best):
        return ref
    if os.path.isdir(ref) and not os.path.exists(os.path.join(ref, "run.json")):
        raise ValueError(
            f"{ref} has no best/ folder: expected a training workdir holding best/ (the best "
            "model by the dev metric), a FileStorage run folder or a run UUID"
        )
    from capreolus_opt.records.load import find_recorded_run

    run = find_recorded_run(ref, sources)  # a run folder, or a UUID looked up in the sources
    if not run.workdir:
        raise ValueError(f"run {run.run_uuid} records no workdir")
    return run.workdir


def handle_rerank(args: argparse.Namespace) -> int:
    """Run ``rerank`` (see the module docstring); returns the exit code."""
    for name in ("top_k", "batch_size"):
        if getattr(args, name) < 1:
            return _error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        return _error(f"-o {args.output}: the folder {out_dir} does not exist")
    if os.path.isdir(args.output):
        return _error(f"-o {args.output}: is a folder, expected the path of a run file to write")
    if os.path.lexists(args.output) and not getattr(args, "force", False):
        return _error(f"-o {args.output}: already exists (pass --force to replace it)")
    try:
        workdir = resolve_workdir(args.run, args.source or ["file://runs"])
        spec = Workdir(workdir).best_manifest
        if not os.path.isfile(spec):  # checked before paying for TensorFlow's import
            return _error(f"{workdir} holds no saved reranker ({spec} is missing)")
        from capreolus_opt.tracking.quiet_import import import_tensorflow_quietly

        import_tensorflow_quietly()
        from capreolus_opt.data.trec.runfile import write_run
        from capreolus_opt.models.saved_reranker import load_reranker, rerank_run
        from capreolus_opt.training.sinks import CountProgress

        reranker = load_reranker(workdir)
        bar: CountProgress | None = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:  # called first with done == 0: the clock starts there
                bar = CountProgress(total, what="reranked", mode=args.progress)
            else:
                bar(done)

        try:
            scores = rerank_run(
                reranker, first_stage_run=args.run_file, topics=args.topics,
                collection=args.collection, k=args.top_k, batch_size=args.batch_size,
                cache_dir=args.cache_dir, progress=progress,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
        metrics = _metrics(args.qrels, scores) if args.qrels else None
        write_run(args.output, scores, tag=args.tag)
    except ValueError as exc:  # DataError included: bad input, nothing written
        return _error(str(exc))
    except OSError as exc:  # -o unwritable, disk full: write_run leaves nothing behind
        return _error(f"-o {args.output}: cannot write the run file ({exc.strerror or exc})")
    pairs = sum(len(d) for d in scores.values())
    weight = reranker.best.get("interpolation_weight")
    mixed = "" if weight is None else f", interpolated with the first stage (weight {weight})"
    print(
        f"reranked {pairs} candidates of {len(scores)} queries with the step-"
        f"{reranker.best['step']} model of {workdir}{mixed} -> {args.output}"
    )
    if metrics is not None:
        print(json.dumps(metrics, sort_keys=True))
    return exit_codes.OK


def _metrics(qrels_path: str, run: dict) -> dict[str, float]:
    from capreolus_opt.data.trec.formats import read_qrels
    from capreolus_opt.metrics.trec import evaluate_run

    qrels = read_qrels(qrels_path)
    return evaluate_run({q: qrels[q] for q in run if q in qrels}, run)[0]
