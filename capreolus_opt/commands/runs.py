"""``capreolus-opt compare | diff | plot | sweep``.

SOURCE is a FileStorage folder (path or ``file://DIR``), ``sqlite:///PATH``, ``postgresql://...``
or ``mongodb://host/db``; several sources are read together and runs stored in more than one
(same ``info.run_uuid``) count once. Skipped records are listed on stderr as ``skipped: ...``.

Exit codes: 0 success, including "no runs found" (stated on stderr); 1 when no run could be read
and some source or record was unreadable, when ``plot``'s metrics match nothing, or when a sweep
point failed; 2 for bad arguments (unknown source scheme, ``--where`` on an unknown
hyperparameter, unknown ``--sort`` column, ambiguous/unknown run in ``diff``, bad ``--grid``).

Nothing heavy (pandas, matplotlib, SQLAlchemy, TensorFlow) is imported until a handler runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from capreolus_opt.records import exit_codes

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# url -> MongoClient used for mongodb:// sources; None = pymongo. Tests set a mongomock client.
MONGO_CLIENT_FACTORY: Any = None


def _write(text: str) -> None:
    """Print a table or diff with terminal control characters escaped: a record may hold
    ``ESC ] 0 ; ...`` sequences (an OSC title change, a cleared screen) that must not act on the
    reader's terminal. Newlines and tabs are kept."""
    sys.stdout.write(escape_controls(text))


def escape_controls(text: str) -> str:
    """``text`` with every C0/C1 control character but newline and tab written as an escape
    (ESC becomes the four characters backslash, x, 1, b)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def _load(sources: list[str]) -> Any:
    from capreolus_opt.records.load import load_runs

    runs = load_runs(*sources, mongo_client_factory=MONGO_CLIENT_FACTORY)
    for problem in runs.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    if not runs:
        where = ", ".join(sources)
        print(f"no runs found in {where}", file=sys.stderr)
    return runs


def _empty_status(runs: Any) -> int:
    return exit_codes.FAILED if runs.problems else exit_codes.OK


def _fail(message: str, code: int = exit_codes.INPUT) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _table_for(runs: Any, args: argparse.Namespace) -> str:
    from capreolus_opt.analysis import compare

    selected = compare.filter_runs(runs, args.where, args.status)
    if not selected:
        print("no runs match the --where/--status filters", file=sys.stderr)
    patterns = args.metric
    if getattr(args, "vs_first_stage", False):
        patterns = [*(patterns or []), *compare.VS_FIRST_STAGE]
    metrics, unmatched = compare.select_metrics(selected, patterns)
    for pattern in unmatched:
        print(f"note: metric {pattern!r} matches no logged metric", file=sys.stderr)
    if args.group_by is not None or args.baseline or args.format == "latex":
        from capreolus_opt.analysis.seed_report import grouped_report  # seed groups

        group_by = [] if args.group_by is None and args.baseline else args.group_by
        return grouped_report(
            selected, metrics, group_by=group_by, baseline=args.baseline, fmt=args.format,
            sort=args.sort, alpha=args.alpha,
        )  # fmt: skip
    columns, rows = compare.compare_rows(selected, metrics)
    if args.sort:
        rows = compare.sort_rows(columns, rows, args.sort)
    return compare.render(columns, rows, args.format)


def compare_handler(args: argparse.Namespace) -> int:
    """Print the comparison table of the runs in ``args.sources``."""
    try:
        runs = _load(args.sources)
        if not runs:
            return _empty_status(runs)
        _write(_table_for(runs, args))
    except ValueError as exc:
        return _fail(str(exc))
    return exit_codes.OK


def diff_handler(args: argparse.Namespace) -> int:
    """Print what differs between two runs found in ``--source``."""
    from capreolus_opt.analysis import compare, diff

    try:
        runs = _load(args.source)
        if not runs:
            return _empty_status(runs) or exit_codes.INPUT
        a, b = diff.find_run(runs, args.run_a), diff.find_run(runs, args.run_b)
        metrics, _ = compare.select_metrics([a, b], args.metric)
        _write(diff.render_diff(a, b, metrics))
    except ValueError as exc:
        return _fail(str(exc))
    return exit_codes.OK


def plot_handler(args: argparse.Namespace) -> int:
    """Save the metric curves of the selected runs to ``args.output``."""
    import os

    from capreolus_opt.analysis import compare, plot

    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        return _fail(f"-o {args.output!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        return _fail(f"-o {args.output!r}: folder {folder!r} is not writable")
    try:
        runs = _load(args.sources)
        if not runs:
            return _empty_status(runs)
        selected = compare.filter_runs(runs, args.where, args.status)
        if not selected:
            return _fail("no runs match the --where/--status filters", exit_codes.FAILED)
        if args.group_by is None:
            plot.plot_runs(selected, args.metric, args.output)
        else:  # mean and band per group of seeds
            from capreolus_opt.analysis import seed_groups as groups
            from capreolus_opt.analysis import seed_plot as group_plot

            names = plot.plot_metric_names(selected, args.metric)
            found = groups.group_runs(selected, args.group_by)
            group_plot.plot_groups(found, names, args.output, band=args.band)
    except ValueError as exc:
        return _fail(str(exc), exit_codes.FAILED)
    except OSError as exc:
        return _fail(
            f"-o {args.output!r} could not be written: {exc.strerror or exc}", exit_codes.FAILED
        )
    print(f"wrote {args.output} ({len(selected)} runs)")
    return exit_codes.OK


def sweep_handler(args: argparse.Namespace) -> int:
    """Train every grid point in its own process, then print the sweep's comparison table."""
    import os

    from capreolus_opt.launchers import sweep
    from capreolus_opt.search import grid
    from capreolus_opt.storage import parse_location
    from capreolus_opt.tracking.run import observer_urls

    try:
        observers = observer_urls(args.observer)
        if not args.grid and not args.seeds:
            raise ValueError("sweep needs --grid NAME=[...] or --seeds N (or both)")
        points = grid.with_seeds(grid.grid_points(args.grid), args.seeds, args.gin_param)
        for url in observers:
            parse_location(url)  # train's own rules: refuse before starting any point
    except ValueError as exc:
        return _fail(str(exc))
    if args.parallel < 1:
        return _fail(f"--parallel must be >= 1, got {args.parallel}")
    if not os.path.isfile(args.config):
        return _fail(f"gin file {args.config!r} does not exist")
    workdirs = [sweep.point_workdir(args.workdir_root) if args.workdir_root else "" for _ in points]
    argvs = [
        sweep.train_command(args.config, point, args.gin_param, workdir=workdir)
        for point, workdir in zip(points, workdirs, strict=True)
    ]
    if args.dry_run:
        print("\n".join(sweep.shown_command(argv, observers) for argv in argvs))
        return exit_codes.OK

    def report(index: int, result: Any) -> None:
        state = "ok" if result.returncode == exit_codes.OK else f"FAILED (exit {result.returncode})"
        run = f"run {result.run_uuid}: " if result.run_uuid else ""
        print(f"[{index + 1}/{len(points)}] {state}: {run}{'; '.join(result.bindings)}", flush=True)
        if result.returncode != exit_codes.OK:
            tail = "\n".join(result.output.strip().splitlines()[-15:])
            print("    " + tail.replace("\n", "\n    "), file=sys.stderr, flush=True)

    started = sweep.utcnow()
    if args.launcher == "slurm":
        from capreolus_opt.launchers.slurm import submit_sweep

        try:
            results = submit_sweep(args, points, observers, workdirs, report)
        except ValueError as exc:
            return _fail(str(exc))
        if results is None:  # --no-wait
            return exit_codes.OK
    else:
        env = sweep.observer_environment(observers)
        results = sweep.run_points(argvs, points, args.parallel, on_done=report, env=env)
    failed = sum(r.returncode != exit_codes.OK for r in results)
    print(f"{len(points) - failed} of {len(points)} points succeeded")
    uuids = [r.run_uuid for r in results if r.run_uuid]
    runs = sweep.sweep_runs(_load(observers[:1]), points, started, uuids)
    if runs:
        from capreolus_opt.records.load import RunList

        args.where, args.status = [], []
        if args.seeds > 1 and args.group_by is None:
            args.group_by = []  # one row per point: mean, std and CI over its seeds
        try:
            _write(_table_for(RunList(runs), args))
        except ValueError as exc:  # e.g. an unknown --sort column: the runs are recorded anyway
            _fail(str(exc))
    return exit_codes.FAILED if failed else exit_codes.OK


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--where", action="append", default=[], metavar="PARAM=VALUE",
        help="keep runs whose hyperparameter PARAM (full name or unique suffix after a dot) "
        "equals VALUE (a literal, e.g. 1e-3); repeat to AND several",
    )  # fmt: skip
    parser.add_argument(
        "--status", action="append", default=[],
        help="keep runs with this status (COMPLETED, FAILED, INTERRUPTED, RUNNING; comma list)",
    )  # fmt: skip


def _add_table_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metric", action="append", default=None, metavar="NAME",
        help="metric to summarise (glob patterns expand, e.g. 'group/*/update_norm'); "
        "default: every eval/ metric and train/loss",
    )  # fmt: skip
    parser.add_argument(
        "--sort", default=None, metavar="COL",
        help="sort by a column (a metric name means its :final column); descending: --sort=-COL",
    )  # fmt: skip
    parser.add_argument(
        "--format", default="table", choices=("table", "csv", "json", "markdown", "latex"),
        help="output format (default: table); with groups, markdown and latex give a paper "
        "table (mean ± std, best bold, significance marks explained in a footnote)",
    )  # fmt: skip
    _add_group_options(parser)


def _add_group_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group-by", nargs="*", default=None, metavar="NAME",
        help="one row per group of runs: n, mean, std and 95%% CI of each metric's final value; "
        "groups share the values of these hyperparameters (no NAME: runs that differ only in "
        "train.seed); put SOURCEs before this option",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", default=None, metavar="RUN_OR_GROUP",
        help="compare every group with this one (a group id such as g1, a run UUID prefix, or "
        "NAME=VALUE): difference and p-value (paired t and randomisation tests over queries "
        "when per-query metrics exist, else Welch over seeds; Holm-corrected)",
    )  # fmt: skip
    parser.add_argument(
        "--alpha", type=float, default=0.05,
        help="significance level of the paper tables' markers (default 0.05)",
    )  # fmt: skip


def register(subparsers: Any) -> None:
    """Add ``compare``, ``diff``, ``plot`` and ``sweep`` to the ``capreolus-opt`` parser."""
    sources_help = "FileStorage folder, file://DIR, sqlite:///PATH, postgresql://..., mongodb://..."
    p = subparsers.add_parser(
        "compare", help="one row per run: differing hyperparameters, final/best metrics",
        description="Compare runs. 'best' is the minimum for metrics whose name contains "
        "loss/error/perplexity, none for group/ diagnostics, and the maximum otherwise.",
    )  # fmt: skip
    p.add_argument("sources", nargs="+", metavar="SOURCE", help=sources_help)
    _add_selection(p)
    _add_table_options(p)
    p.add_argument(
        "--vs-first-stage", action="store_true",
        help="add a reranker's test nDCG@10 (reported, model alone, first stage) and the "
        "p-values and wins/losses of the model and the interpolated run against the first stage",
    )  # fmt: skip
    p.set_defaults(func=compare_handler)

    p = subparsers.add_parser(
        "diff", help="hyperparameter, group-table and metric differences of two runs",
        description="RUN_A and RUN_B are run UUIDs or unique prefixes (as compare prints them).",
    )  # fmt: skip
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument(
        "--source", "-s", action="append", required=True, metavar="SOURCE",
        help=f"where to look for the runs (repeatable): {sources_help}",
    )  # fmt: skip
    p.add_argument("--metric", action="append", default=None, metavar="NAME")
    p.set_defaults(func=diff_handler)

    p = subparsers.add_parser("plot", help="metric curves of several runs, one panel per metric")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help=sources_help)
    p.add_argument(
        "--metric", action="append", required=True, metavar="NAME",
        help="metric or glob; group/*/NAME gives one panel per group (repeatable)",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="FILE.png")
    _add_selection(p)
    p.add_argument(
        "--group-by", nargs="*", default=None, metavar="NAME",
        help="one line per group (mean over its runs) with a band; no NAME: runs that differ "
        "only in train.seed",
    )  # fmt: skip
    p.add_argument(
        "--band", default="std", choices=("std", "ci", "none"),
        help="band around group means: ± one std (default) or the 95%% CI of the mean",
    )  # fmt: skip
    p.set_defaults(func=plot_handler)

    p = subparsers.add_parser("sweep", help="train one tracked run per gin-binding grid point")
    p.add_argument("config", metavar="CONFIG.gin")
    p.add_argument(
        "--grid", action="append", default=[], metavar="'NAME=[v1, v2]'",
        help="a binding and its values as gin literals; several --grid form a product",
    )  # fmt: skip
    p.add_argument(
        "--seeds", type=int, default=0, metavar="N",
        help="run every grid point N times, with train.seed = 0..N-1 (the table then groups "
        "them: mean, std and CI over the seeds)",
    )  # fmt: skip
    p.add_argument("--gin_param", action="append", default=[], help="binding for every point")
    p.add_argument("--parallel", type=int, default=1, metavar="N", help="processes at once")
    p.add_argument(
        "--observer", action="append", default=[], metavar="URL",
        help="observer URL passed to each train (repeatable; default file://runs); the final "
        "table reads the first one",
    )  # fmt: skip
    p.add_argument(
        "--workdir_root", default="", metavar="DIR",
        help="give each point a fresh checkpoint folder under DIR (default: train's own, "
        "./workdirs/<run_uuid>)",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the train commands only")
    _add_table_options(p)
    from capreolus_opt.launchers.slurm import add_launcher_arguments

    add_launcher_arguments(p)
    p.set_defaults(func=sweep_handler)
