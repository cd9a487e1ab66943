"""The process exit codes of every ``capreolus-opt`` command, and how several combine.

- :data:`OK` (0): the run COMPLETED (for readers: the command did its job; "no runs found" too).
- :data:`FAILED` (1): the run FAILED, a sweep point or trial failed, or nothing was readable.
- :data:`INPUT` (2): bad input (a value, a file, an unreachable observer, a workdir in use or
  owned by another run); nothing was recorded.
- :data:`STORE_INCOMPLETE` (3): the run COMPLETED, but an observer's record is incomplete (named
  on stderr), or a store failed while reading/writing; also a disk (or quota) that filled and
  ended a run, which is then FAILED (one line on stderr).
- :data:`INTERRUPTED` (130): SIGINT/SIGTERM (or a pruner) stopped the run; its checkpoint is
  written and ``--resume`` continues it.
"""

from __future__ import annotations

from collections.abc import Iterable

OK = 0
FAILED = 1
INPUT = 2
STORE_INCOMPLETE = 3
INTERRUPTED = 130


def combined(codes: Iterable[int]) -> int:
    """One code for several processes (search workers): :data:`INPUT` if any had bad input, else
    :data:`INTERRUPTED` if any was interrupted, else the first nonzero (0 when all are 0)."""
    codes = list(codes)
    for wanted in (INPUT, INTERRUPTED):
        if wanted in codes:
            return wanted
    return next((c for c in codes if c), OK)
