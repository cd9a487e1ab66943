"""``capreolus-opt export tensorboard|mlflow SOURCES``: runs into the trackers' own web UIs.

SOURCES are read as by ``compare`` (folders, ``sqlite:///``, ``postgresql://``, ``mongodb://``;
runs stored in several merge into one). ``--where``/``--status`` select runs as in ``compare``.
Exit codes: 0 (also "no runs found"), 1 when nothing could be read or the tracker failed,
2 for bad arguments, an unusable ``--logdir``, an MLflow server that does not answer within
10 s, or a missing extra (``pip install 'capreolus_opt[tensorboard]'`` /
``'capreolus_opt[mlflow]'``). Neither TensorFlow nor the trackers are imported until a handler
runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from capreolus_opt.records import exit_codes


def _selected(args: argparse.Namespace) -> Any:
    from capreolus_opt.analysis.compare import filter_runs
    from capreolus_opt.records.load import load_runs

    runs = load_runs(*args.sources)
    for problem in runs.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not runs:
        print(f"no runs found in {', '.join(args.sources)}", file=sys.stderr)
    selected = filter_runs(runs, args.where, args.status)
    if runs and not selected:
        print("no runs match the --where/--status filters", file=sys.stderr)
    return runs, selected


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--where", action="append", default=[], metavar="PARAM=VALUE",
        help="export runs whose hyperparameter PARAM equals VALUE (as compare --where)",
    )  # fmt: skip
    parser.add_argument(
        "--status", action="append", default=[],
        help="export runs with this status (COMPLETED, FAILED, ...; comma list)",
    )  # fmt: skip


def tensorboard_handler(args: argparse.Namespace) -> int:
    """Write the selected runs as TensorBoard event files under ``args.logdir``."""
    from capreolus_opt.export.tensorboard import export_tensorboard

    try:
        runs, selected = _selected(args)
        if not selected:
            return exit_codes.FAILED if runs.problems and not runs else exit_codes.OK
        written = export_tensorboard(selected, args.logdir)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.INPUT
    except OSError as exc:  # the disk filled mid-export: the run being written is not kept
        print(f"error: writing under --logdir {args.logdir} failed: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    points = sum(written.values())
    print(f"wrote {len(written)} runs ({points} points) to {args.logdir}; "
          f"view them with: tensorboard --logdir {args.logdir}")  # fmt: skip
    return exit_codes.OK


def mlflow_handler(args: argparse.Namespace) -> int:
    """Create one MLflow run per selected run at ``args.tracking_uri`` (idempotent)."""
    from capreolus_opt.export.mlflow import export_mlflow

    try:
        runs, selected = _selected(args)
        if not selected:
            return exit_codes.FAILED if runs.problems and not runs else exit_codes.OK
        added, skipped = export_mlflow(selected, args.tracking_uri, args.experiment)
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.INPUT
    except Exception as exc:  # MlflowException and the store's own errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: MLflow at {args.tracking_uri!r} failed: {first}", file=sys.stderr)
        return exit_codes.FAILED
    print(f"exported {added} runs to experiment {args.experiment!r} at {args.tracking_uri} "
          f"({skipped} already there)")  # fmt: skip
    return exit_codes.OK


def register(subparsers: Any) -> None:
    """Add ``export tensorboard`` and ``export mlflow`` to the ``capreolus-opt`` parser."""
    export = subparsers.add_parser(
        "export", help="copy runs into TensorBoard event files or an MLflow tracking store"
    )
    targets = export.add_subparsers(dest="target", metavar="TARGET", required=True)
    sources_help = "FileStorage folder, file://DIR, sqlite:///PATH, postgresql://..., mongodb://..."

    p = targets.add_parser(
        "tensorboard", help="one TensorBoard run per run: scalars and HParams",
        description="Write DIR/<run_uuid>/ event files (scalars, HParams session) and the HParams "
        "experiment summary in DIR; exporting again replaces them.",
    )  # fmt: skip
    p.add_argument("sources", nargs="+", metavar="SOURCE", help=sources_help)
    p.add_argument("--logdir", required=True, metavar="DIR")
    _add_selection(p)
    p.set_defaults(func=tensorboard_handler)

    p = targets.add_parser(
        "mlflow", help="one MLflow run per run: params, metrics, times (idempotent by run UUID)",
    )  # fmt: skip
    p.add_argument("sources", nargs="+", metavar="SOURCE", help=sources_help)
    p.add_argument(
        "--tracking-uri", required=True, metavar="URI",
        help="MLflow tracking URI: sqlite:///mlflow.db, http://127.0.0.1:5000, file:///DIR ...",
    )  # fmt: skip
    p.add_argument("--experiment", default="capreolus_opt", help="experiment name")
    _add_selection(p)
    p.set_defaults(func=mlflow_handler)
