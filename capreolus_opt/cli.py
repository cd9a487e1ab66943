"""The ``capreolus-opt`` command line.

Each sub-command lives in :mod:`capreolus_opt.commands` and registers itself through a
``register(subparsers)`` function; this module only assembles them. Nothing here imports
TensorFlow at module level, so ``capreolus-opt --help`` answers in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from capreolus_opt.optional import MissingExtraError
from capreolus_opt.records import exit_codes
from capreolus_opt.tracking.quiet_import import import_tensorflow_quietly

# Modules that provide ``register(subparsers)``; each sets ``func=handler`` (args -> exit code).
_COMMAND_MODULES = (
    "capreolus_opt.commands.train",  # train
    "capreolus_opt.commands.groups",  # groups
    "capreolus_opt.commands.runs",  # compare, diff, plot, sweep
    "capreolus_opt.commands.rerank",  # rerank
    "capreolus_opt.commands.tune",  # tune
    "capreolus_opt.commands.export",  # export tensorboard | mlflow
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


# Sub-commands that build models (they import TensorFlow); the others only read records.
_TENSORFLOW_COMMANDS = frozenset({"train", "groups"})


class _MaskingStream:
    """A text stream that masks the credentials of every URL written to it (one place for
    everything a command prints: messages, tables, a point's output, a traceback)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from capreolus_opt.storage import mask_urls

        self._stream.write(mask_urls(text) if "://" in text else text)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    sys.stdout, sys.stderr = _MaskingStream(sys.stdout), _MaskingStream(sys.stderr)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command in _TENSORFLOW_COMMANDS:
            import_tensorflow_quietly()
        try:
            return int(args.func(args) or exit_codes.OK)
        except MissingExtraError as exc:  # an input error: the one-line install hint
            print(f"capreolus-opt {args.command}: error: {exc}", file=sys.stderr)
            return exit_codes.INPUT
    finally:
        sys.stdout, sys.stderr = sys.stdout._stream, sys.stderr._stream


if __name__ == "__main__":
    sys.exit(main())
