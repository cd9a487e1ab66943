"""Resolution of AdamMultilr's groups against variable paths, once, when the optimizer is built."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from capreolus_opt.optimizer.groups import GroupSpec


def variable_path(variable: Any) -> str:
    """The name users write patterns against: Keras `path`, else `name` without ``:0``."""
    path = getattr(variable, "path", None)
    if isinstance(path, str):
        return path
    return re.sub(r":\d+$", "", str(variable.name))


def resolve_groups(
    specs: Sequence[GroupSpec], paths: Sequence[str]
) -> list[tuple[int, str | None]]:
    """For each path, `(group index, matching pattern)`; unmatched -> `(len(specs), None)`.

    `re.search` semantics; the first group in order wins, and within a group the first pattern.
    """
    result = []
    for path in paths:
        match = (len(specs), None)
        for index, spec in enumerate(specs):
            hit = next((r.pattern for r in spec.regexes if r.search(path)), None)
            if hit is not None:
                match = (index, hit)
                break
        result.append(match)
    return result


def unmatched_messages(
    specs: Sequence[GroupSpec], paths: Sequence[str], assignment: Sequence[tuple[int, str | None]]
) -> list[str]:
    """One message per group that received no variable and per pattern that matches none."""
    counts = [0] * (len(specs) + 1)
    for index, _ in assignment:
        counts[index] += 1
    sample = ", ".join(repr(p) for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
    messages = []
    for index, spec in enumerate(specs):
        dead = [r.pattern for r in spec.regexes if not any(r.search(p) for p in paths)]
        if counts[index] == 0:
            messages.append(
                f"Group {spec.name!r} (patterns {list(spec.patterns)}) matched no variable; its "
                f"variables would silently train at another lr. Variable paths look like: {sample}"
            )
        elif dead:
            messages.append(
                f"Pattern(s) {dead} of group {spec.name!r} matched no variable. "
                f"Variable paths look like: {sample}"
            )
    return messages
