"""Every gin name outside gin's public API that capreolus_opt reads, in one place.

gin-config 0.5.0 has no public way to enumerate the parsed bindings, to look a selector up in
its registry, to resolve ``include`` beside the including file, or to tell a ``%CONSTANT``
reference from other references; the functions here do it on gin's module-level names. When gin
is upgraded, this module and ``tests/config/test_gin_compat.py`` are where it breaks.

Version policy, checked on import: the private names missing raise ``ImportError`` naming them
and the tested version (nothing could parse a config); a different version with the names present
warns once (``RuntimeWarning``, one line) and runs, since such an upgrade usually works.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import Any

import gin
import gin.config

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
    try:
        installed = metadata.version("gin-config")
    except metadata.PackageNotFoundError:
        installed = "unknown"
    missing = [name for name in PRIVATE_NAMES if not hasattr(gin.config, name)]
    if missing:
        raise ImportError(
            f"gin-config {installed} lacks gin.config.{', gin.config.'.join(missing)}, which "
            f"capreolus_opt reads (tested with gin-config {TESTED_VERSION}): "
            f"pip install 'gin-config=={TESTED_VERSION}'"
        )
    if installed == TESTED_VERSION:
        return None
    return (
        f"gin-config {installed} is installed; capreolus_opt is tested with {TESTED_VERSION} "
        f"(pip install 'gin-config=={TESTED_VERSION}' if parsing a config misbehaves)"
    )


def _warn_if_untested() -> None:
    message = check_version()
    if message is not None:
        warnings.warn(message, RuntimeWarning, stacklevel=2)


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
