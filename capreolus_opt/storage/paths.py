"""Identifiers read from a store, and paths built from them, that cannot leave their folder.

A run record is data someone else may have written: its ``run_uuid``, its artifact names and its
group names end up in file names (``export tensorboard`` writes ``LOGDIR/<run_uuid>/``, the
FileStorage reader opens ``<run folder>/<artifact name>``). Every such value is checked twice:
by shape when the record is loaded (:func:`check_run_uuid`, :func:`check_file_name`,
:func:`check_group_name`), and once more where a path is built from it (:func:`safe_join`), so a
value that slipped past the first check still cannot name a file outside the root.
"""

from __future__ import annotations

import os
import re
from typing import Any

#: What every writer stores as ``info.run_uuid``: ``uuid.uuid4().hex``.
RUN_UUID = re.compile(r"[0-9a-f]{32}")
#: Group names, as the optimizer accepts them (they are part of metric names ``group/<g>/lr``).
GROUP_NAME = re.compile(r"[0-9A-Za-z_.-]+")


class UnsafePathError(ValueError):
    """A path built from a stored value would leave its root folder."""


def check_run_uuid(value: Any, what: str = "run_uuid") -> str:
    """``value`` when it is 32 lowercase hexadecimal digits; else ValueError naming it."""
    if not isinstance(value, str) or not RUN_UUID.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a run UUID (32 hexadecimal digits)")
    return value


def check_file_name(value: Any, what: str = "file name") -> str:
    """``value`` when it is one plain file name (no folder part, not ``.``/``..``, no NUL)."""
    if (
        not isinstance(value, str)
        or value in ("", ".", "..")
        or "/" in value
        or "\\" in value
        or "\0" in value
    ):
        raise ValueError(f"{what} {value!r} is not a plain file name")
    return value


def check_group_name(value: Any, what: str = "group name") -> str:
    """``value`` when it is a group name the optimizer accepts (letters, digits, ``_ . -``)."""
    if not isinstance(value, str) or not GROUP_NAME.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{what} {value!r} is not a group name (letters, digits, _ . -)")
    return value


def safe_join(root: str | os.PathLike, *parts: str) -> str:
    """``os.path.join(root, *parts)``, refused unless it stays inside ``root``.

    Each part must be relative and, once joined and normalised (``..`` resolved, symbolic links
    of ``root`` itself followed), the result must be ``root`` or below it.

    Raises:
        UnsafePathError: a part is absolute, or the joined path leaves ``root``.
    """
    root = os.fspath(root)
    for part in parts:
        if not isinstance(part, str) or not part or "\0" in part or os.path.isabs(part):
            raise UnsafePathError(f"{part!r} is not a relative path inside {root}")
    joined = os.path.join(root, *parts)
    base = os.path.realpath(root)
    target = os.path.realpath(joined)
    if os.path.commonpath([base, target]) != base:
        raise UnsafePathError(f"{os.path.join(*parts)!r} leads outside {root}")
    return joined
