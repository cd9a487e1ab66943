"""``capreolus-opt groups``: which learning-rate group each variable falls in, without training.

Builds the configured task's model and the configured optimizer on its trainable variables (the
same resolution ``train`` performs), then prints the variable-to-group table with group totals.
A pattern that matches nothing is a warning, or an error with ``--strict`` or
``AdamMultilr.strict = True``: a typo in a pattern must not silently train at the wrong lr.
Exit codes: 0, 2 bad input (a config that does not parse or build, a strict pattern that matches
nothing: one line on stderr, as ``train`` refuses it), 1 an unexpected failure.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from capreolus_opt.records import exit_codes


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``groups`` sub-command."""
    parser = subparsers.add_parser(
        "groups",
        help="print the variable-to-group table of a config without training",
        description="Build the configured model and optimizer and print, for every trainable "
        "variable, its shape, parameter count, group, matching pattern and learning rate.",
    )
    parser.add_argument("gin_files", nargs="+", metavar="CONFIG.gin", help="gin files, in order")
    parser.add_argument(
        "--gin_param",
        action="append",
        default=[],
        metavar="BINDING",
        help="extra gin binding, e.g. 'AdamMultilr.learning_rate = 3e-4' (repeatable)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 2 when a group's patterns match no variable"
    )
    parser.add_argument("--format", choices=("text", "csv"), default="text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``capreolus-opt groups``; returns the exit code."""
    from capreolus_opt import config as gin_config

    try:
        gin_config.parse_config(args.gin_files, args.gin_param)
        table = build_group_table(strict=args.strict)
    except (ValueError, TypeError) as err:  # gin's errors, bad values, unreadable files
        message = " ".join(str(err).split()) or type(err).__name__  # gin's span several lines
        print(f"capreolus-opt groups: error: {message}", file=sys.stderr)
        return exit_codes.INPUT
    print(table.to_text() if args.format == "text" else table.to_csv(), end="")
    return exit_codes.OK


def build_group_table(*, strict: bool = False):
    """Builds the configured model and optimizer (default strategy) and returns the GroupTable.

    Unmatched-pattern warnings are printed to stderr; with ``strict`` they raise ValueError.
    """
    from capreolus_opt import config as gin_config

    task = gin_config.configured("train.task")
    optimizer = gin_config.configured("train.optimizer")
    if callable(optimizer) and not hasattr(optimizer, "group_table"):
        optimizer = optimizer()
    model = task.build_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer.build(model.trainable_variables)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if messages and strict:
        raise ValueError("; ".join(messages))
    for message in messages:
        print(f"warning: {message}", file=sys.stderr)
    return optimizer.group_table()
