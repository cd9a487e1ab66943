"""Parsing one gin file with its ``include`` statements resolved beside the including file.

gin resolves ``include 'x.gin'`` against its search path (the working directory, then
``gin.add_config_file_search_path``'s), not beside the including file, and has no public API for
it: a user file that includes a shipped config by absolute path broke on that config's own
``include 'quickstart.gin'``. gin also follows includes without a cycle guard (a file that
includes itself ends in a RecursionError deep inside its parser).
"""

from __future__ import annotations

import logging
import os
import re

import gin

from capreolus_opt.config import gin_compat
from capreolus_opt.config.errors import GinConfigError

_INCLUDE = re.compile(r"""^\s*include\s+(['"])(.+?)\1""", re.MULTILINE)


def parse_file(path: str) -> None:
    """Parse the gin file ``path`` into gin's config; its includes, at any depth, resolve beside
    the file that includes them, before gin's search path.

    Raises:
        GinConfigError: the file is missing, includes itself, or does not parse.
    """
    if not os.path.isfile(path):
        raise GinConfigError(f"gin file {path!r} does not exist (expected a readable file)")
    _refuse_include_cycle(os.path.abspath(path), [])
    folders = include_folders(os.path.abspath(path))
    # gin's package-resource reader logs "Path not found" (root logger) for every folder tried
    # before the one that holds an include; those misses are expected here.
    root = logging.getLogger()
    root.addFilter(_quiet_path_misses)
    try:
        with gin_compat.include_folders_first(folders):
            gin.parse_config_file(os.path.abspath(path))
    except Exception as err:  # gin raises ValueError, KeyError, SyntaxError, ImportError...
        raise GinConfigError(f"could not parse gin file {path!r}: {err}") from err
    finally:
        root.removeFilter(_quiet_path_misses)


def _quiet_path_misses(record: logging.LogRecord) -> bool:
    return record.msg != "Path not found: %s"


def _included_files(path: str) -> list[str]:
    """The files ``path`` includes that exist, resolved beside ``path`` (absolute paths)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    out = []
    for match in _INCLUDE.finditer(text):
        target = os.path.join(os.path.dirname(path), match.group(2))
        if os.path.isfile(target):
            out.append(os.path.abspath(target))
    return out


def _refuse_include_cycle(path: str, chain: list[str]) -> None:
    if path in chain:
        cycle = " -> ".join([*chain[chain.index(path) :], path])
        raise GinConfigError(f"gin file {path!r} includes itself ({cycle}); expected no cycles")
    for included in _included_files(path):
        _refuse_include_cycle(included, [*chain, path])


def include_folders(path: str) -> list[str]:
    """The folders of ``path`` and of every file it includes, transitively, in include order."""
    folders: list[str] = []
    pending, seen = [path], set()
    while pending:
        current = pending.pop(0)
        if current in seen or not os.path.isfile(current):
            continue
        seen.add(current)
        folder = os.path.dirname(current)
        if folder not in folders:
            folders.append(folder)
        with open(current, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        for match in _INCLUDE.finditer(text):
            target = match.group(2)
            candidates = [target] if os.path.isabs(target) else [
                os.path.join(f, target) for f in folders
            ]  # fmt: skip
            pending.extend(os.path.abspath(c) for c in candidates if os.path.isfile(c))
    return folders
