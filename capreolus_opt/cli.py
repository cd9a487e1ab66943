"""The ``capreolus-opt`` command line.

Each sub-command lives in :mod:`capreolus_opt.commands` and registers itself through a
``register(subparsers)`` function; this module only assembles them. Nothing here imports
TensorFlow at module level, so ``capreolus-opt --help`` answers in well under a second.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from capreolus_opt.optional import MissingExtraError

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
# TensorFlow 2.21 logs these from C++ before absl logging is initialised, so no
# TF_CPP_MIN_LOG_LEVEL hides them; they precede every training's output.
_STARTUP_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on.",
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up notices dropped from stderr; everything else it
    writes there (warnings, errors, a traceback) is passed on unchanged, in order.

    The notices are written to file descriptor 2 by C++ code, so stderr is redirected at the
    descriptor level into a temporary file for the duration of the import.
    """
    if "tensorflow" in sys.modules:
        return
    import tempfile

    # TensorFlow's later C++ chatter (CPU features, plugin registration) hides our output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [
                line
                for line in text.splitlines(keepends=True)
                if not any(marker in line for marker in _STARTUP_NOISE)
            ]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


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
            return int(args.func(args) or 0)
        except MissingExtraError as exc:  # an input error: the one-line install hint
            print(f"capreolus-opt {args.command}: error: {exc}", file=sys.stderr)
            return 2
    finally:
        sys.stdout, sys.stderr = sys.stdout._stream, sys.stderr._stream


if __name__ == "__main__":
    sys.exit(main())
