"""Every gin name outside gin's public API that capreolus_opt reads, in one place.

gin-config 0.5.0 has no public way to enumerate the parsed bindings, to look a selector up in
its registry, to resolve ``include`` beside the including file, or to tell a ``%CONSTANT``
reference from other references; the functions here do it on gin's module-level names. When gin
is upgraded, this module and ``tests/config/test_gin_compat.py`` are where it breaks.

Version policy, checked on import: the private names missing raise ``ImportError`` naming them
and the tested version (nothing could parse a config); a different version with the names present
warns once (``UntestedVersionWarning``, one line) and runs, since such an upgrade usually works.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gin
import gin.config

from capreolus_opt.framework_versions import check_pinned, warn_untested

#: The gin-config version these names are tested with (pinned in pyproject.toml).
TESTED_VERSION = "0.5.0"

#: The private names of ``gin.config`` read here.
PRIVATE_NAMES = ("_CONFIG", "_REGISTRY", "_LOCATION_PREFIXES", "_retrieve_constant")


def check_version() -> str | None:
    """Check the installed gin against :data:`TESTED_VERSION`.

    Returns:
        The one-line warning for an untested version whose private names are all present (None
        for the tested version).

    Raises:
        ImportError: a name of :data:`PRIVATE_NAMES` is missing from ``gin.config``.
    """
    missing = [f"gin.config.{name}" for name in PRIVATE_NAMES if not hasattr(gin.config, name)]
    return check_pinned("gin-config", TESTED_VERSION, missing, "parsing a config")


def _warn_if_untested() -> None:
    warn_untested(check_version())


_warn_if_untested()


def bindings() -> dict[tuple[str, str], dict[str, Any]]:
    """Everything parsed, ``{(scope, selector): {parameter: value}}`` (gin's own: read only)."""
    return gin.config._CONFIG


def find_configurable(selector: str) -> Any:
    """The registered configurable ``selector`` names (gin's ``Configurable``), or None."""
    return gin.config._REGISTRY.get_match(selector)


def is_macro_or_constant(fn: Callable) -> bool:
    """Whether ``fn`` is what a ``%MACRO`` or ``%CONSTANT`` reference calls."""
    return fn is gin.config.macro or fn is gin.config._retrieve_constant


@contextlib.contextmanager
def include_folders_first(folders: Sequence[str]) -> Iterator[None]:
    """Within the block, gin resolves a relative ``include`` in ``folders`` (in order) before its
    own search path (the working directory, then ``gin.add_config_file_search_path``'s)."""
    prefixes = gin.config._LOCATION_PREFIXES
    prefixes[0:0] = list(folders)
    try:
        yield
    finally:
        del prefixes[0 : len(folders)]
