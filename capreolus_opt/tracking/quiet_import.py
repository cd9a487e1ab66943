"""Importing TensorFlow without its start-up notices (every process that trains calls this:
the CLI, search workers, Slurm jobs, ``experiments/train.py``)."""

from __future__ import annotations

import os
import sys

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
