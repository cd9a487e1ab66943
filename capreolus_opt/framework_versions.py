"""The version check each framework compat module runs when it is imported.

A compat module (`capreolus_opt.optimizer.keras_compat`, `capreolus_opt.optimizer.tf_compat`)
holds every private name the project uses of one framework; those names are only known to exist
in the releases the project is tested on. `check_version` turns "outside that range" into one
clear message at import, instead of an ``AttributeError`` deep inside a traced training step:

- another major version (Keras 2, TensorFlow 3): ``ImportError``. The public classes we build on
  are different classes there, nothing would work;
- the same major version, a minor release outside the tested ones: one `UntestedVersionWarning`
  naming the installed version and the tested range. It may well work; the compat module's test
  (``tests/optimizer/test_keras_compat.py`` / ``test_tf_compat.py``) says whether it does. Silence
  it with ``warnings.filterwarnings("ignore", category=UntestedVersionWarning)``.

gin-config and sacred are pinned to one release: their compat modules
(``config/gin_compat.py``, ``tracking/sacred_private.py``) look up their private names and call
`check_pinned`, which raises ``ImportError`` when a name is missing and otherwise gives the
same one-line `UntestedVersionWarning` for any release but the pinned one (`warn_untested`).
"""

from __future__ import annotations

import re
import warnings
from importlib import metadata


class UntestedVersionWarning(UserWarning):
    """A framework release outside the range the project's compat modules are tested on."""


def major_minor(version: str) -> tuple[int, int] | None:
    """``"3.15.1" -> (3, 15)``, ``"2.21.0rc1" -> (2, 21)``; None when it does not start so."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_version(framework: str, version: str, tested: tuple[tuple[int, int], ...]) -> None:
    """Raise or warn (module docstring) unless `version`'s major.minor is one of `tested`.

    `tested` lists (major, minor) pairs of one major version, e.g. ``((3, 15),)``.
    """
    found = major_minor(version)
    if found in tested:
        return
    span = ", ".join(f"{a}.{b}.x" for a, b in tested)
    majors = {major for major, _ in tested}
    if found is not None and found[0] not in majors:
        raise ImportError(
            f"capreolus_opt needs {framework} {span}; {framework} {version} is installed "
            f"(another major version). Install {framework} {span}."
        )
    warnings.warn(
        f"{framework} {version} is outside the range capreolus_opt is tested on ({span}): the "
        f"{framework} internals it relies on may have changed.",
        UntestedVersionWarning,
        stacklevel=2,
    )


def check_pinned(
    distribution: str, tested_version: str, missing: list[str], purpose: str
) -> str | None:
    """The check of a framework pinned to one release (gin-config, sacred), whose private names
    (``missing``: those not found in the installed release) the compat module has looked up.

    Returns:
        None for the tested release; else the one-line message :func:`warn_untested` gives.

    Raises:
        ImportError: ``missing`` is not empty; naming them and the pin to install.
    """
    try:
        installed = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        installed = "unknown"
    if missing:
        raise ImportError(
            f"{distribution} {installed} lacks {', '.join(missing)}, which capreolus_opt uses "
            f"(tested with {distribution} {tested_version}): "
            f"pip install '{distribution}=={tested_version}'"
        )
    if installed == tested_version:
        return None
    return (
        f"{distribution} {installed} is installed; capreolus_opt is tested with {tested_version} "
        f"(pip install '{distribution}=={tested_version}' if {purpose} misbehaves)"
    )


def warn_untested(message: str | None) -> None:
    """Warn once with ``message`` (from :func:`check_pinned`) as an `UntestedVersionWarning`."""
    if message is not None:
        warnings.warn(message, UntestedVersionWarning, stacklevel=3)
