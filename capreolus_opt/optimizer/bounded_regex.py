"""Regexes from configs (``pattern_lrs``, layer-wise decay) matched with a time bound.

A pattern such as ``(a|aa)+$`` backtracks exponentially on a long path, and Python's ``re`` can
be neither interrupted nor timed out (its matcher holds the GIL). Config patterns are therefore
checked for syntax with ``re`` (what the docs promise) and matched with the ``regex`` package in
its ``re``-compatible ``VERSION0`` mode, whose ``timeout=`` argument stops a match after
:data:`MATCH_TIMEOUT_S` (docs/STACK_FACTS.md). A pattern is refused, naming it:

- when compiled (before anything trains), if it takes longer than that on one of a few long
  probe strings built from its own characters (``aaaa…!``), the usual catastrophic input;
- when matched, if it takes longer than that on a real variable path.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import regex

#: The longest one search of a config pattern may take (a normal one takes microseconds).
MATCH_TIMEOUT_S = 1.0
#: Length of the probe strings (longer than any variable path Keras builds in practice).
PROBE_LENGTH = 256


class PatternTimeoutError(ValueError):
    """A config regex backtracked for longer than :data:`MATCH_TIMEOUT_S` on some path."""


@dataclasses.dataclass(frozen=True)
class BoundedPattern:
    """A compiled config regex: ``.pattern`` (its text) and a bounded ``.search(path)``."""

    pattern: str
    where: str
    _compiled: Any = dataclasses.field(repr=False, compare=False)

    def search(self, text: str) -> Any:
        """``re.search`` semantics; PatternTimeoutError naming the pattern when too slow."""
        try:
            return self._compiled.search(text, timeout=MATCH_TIMEOUT_S)
        except TimeoutError:
            raise PatternTimeoutError(
                f"{self.where} {self.pattern!r} took more than {MATCH_TIMEOUT_S} s on "
                f"{_shown(text)} (catastrophic backtracking, e.g. a nested quantifier such as "
                "(a+)+ or (a|aa)+); rewrite it without nested repetition"
            ) from None

    @property
    def groups(self) -> int:
        return self._compiled.groups


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"


def _probes(pattern: str) -> list[str]:
    # Long runs of the pattern's own characters, each ended by a character that breaks the
    # match late (two endings: a pattern may itself end in one of them).
    letters = sorted({c for c in pattern if c.isalnum() or c in "_/.-"}) or ["a"]
    cycle = "".join(letters)
    bodies = [c * PROBE_LENGTH for c in letters[:8]]
    bodies.append((cycle * (PROBE_LENGTH // len(cycle) + 1))[:PROBE_LENGTH])
    bodies.append(("layer_0/" * (PROBE_LENGTH // 8))[:PROBE_LENGTH])
    return [body + end for body in bodies for end in ("!", "\x00")]


def compile_bounded(pattern: str, where: str = "pattern") -> BoundedPattern:
    """``pattern`` compiled for bounded matching; ``where`` names it in errors.

    Raises:
        ValueError: not a valid regex (``re`` syntax), or a probe match exceeds the bound
            (:class:`PatternTimeoutError`).
    """
    try:
        re.compile(pattern)
        compiled = regex.compile(pattern, flags=regex.VERSION0)
    except (re.error, regex.error) as error:
        raise ValueError(f"{where} is not a valid regex: {error}. Received: {pattern!r}") from None
    bounded = BoundedPattern(pattern, where, compiled)
    for probe in _probes(pattern):
        bounded.search(probe)
    return bounded
