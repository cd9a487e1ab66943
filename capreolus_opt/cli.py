"""The ``capreolus-opt`` command line.

Each sub-command lives beside the layer it drives and registers itself through a
``register(subparsers)`` function; this module only assembles them. Nothing here imports
TensorFlow at module level, so ``capreolus-opt --help`` answers in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Modules that provide ``register(subparsers)``; each sets ``func=handler`` (args -> exit code).
_COMMAND_MODULES = (
    "capreolus_opt.tracking.cli",  # train
    "capreolus_opt.commands_groups",  # groups
    "capreolus_opt.runs.cli",  # compare, diff, plot, sweep
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="capreolus-opt",
        description="Train with per-group learning rates (gin-configured, Sacred-tracked) "
        "and compare runs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    # TensorFlow's C++ start-up chatter (oneDNN, CPU features) hides our own output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
