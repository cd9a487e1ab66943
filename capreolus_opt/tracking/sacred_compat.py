"""Sacred 0.8.7 without ``pkg_resources`` (docs/STACK_FACTS.md §5).

Sacred 0.8.7 imports ``pkg_resources`` in two modules: ``sacred.dependencies`` reads
``working_set`` (iteration, ``by_key.get(name)``, and per distribution ``project_name``,
``version`` and ``_get_metadata("top_level.txt")``) to record package versions, and
``sacred.observers.mongo`` calls ``resource_filename("sacred", "data/mime.types")``. setuptools
82 removed ``pkg_resources`` (``import sacred`` then fails), setuptools 81 and earlier warn on
its import, and Python >= 3.12 virtual environments contain no setuptools at all.

:func:`install` puts a meta-path finder in front of the import system. While (and only while)
one of those two sacred modules executes, ``sys.modules["pkg_resources"]`` is :data:`SHIM`, a
stand-in built from :mod:`importlib.metadata` and :mod:`importlib.resources` that provides
exactly what sacred reads; the previous entry (the real module, or none) is restored right
after. Sacred's modules keep their reference to the stand-in; every other library that imports
``pkg_resources`` gets what it would get without us. The stand-in is used even when the real
module exists, so a run records the same versions whatever setuptools is installed, no
deprecation warning is printed, and no scan of every installed distribution happens at import.

``capreolus_opt.tracking`` calls :func:`install` on import, so every module of the package that
imports sacred is covered; a script that imports sacred itself imports
``capreolus_opt.tracking`` first.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.metadata
import importlib.resources
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: The sacred modules that import ``pkg_resources`` (sacred 0.8.7).
SACRED_MODULES = ("sacred.dependencies", "sacred.observers.mongo")


def safe_name(name: str) -> str:
    """``pkg_resources.safe_name``: runs of characters other than letters, digits and '.' -> '-'."""
    return re.sub("[^A-Za-z0-9.]+", "-", name)


def project_name(dist: importlib.metadata.Distribution) -> str | None:
    """The name ``pkg_resources`` gives ``dist``: its metadata folder's name part
    (``pyyaml-6.0.4.dist-info`` -> ``pyyaml``), not the metadata's ``Name`` (``PyYAML``), so that
    records stay comparable with runs recorded through the real module; ``Name`` for
    distributions that are not a folder."""
    folder = getattr(dist, "_path", None)
    if folder is not None and Path(folder).suffix in (".dist-info", ".egg-info"):
        return Path(folder).stem.split("-", 1)[0]
    return dist.metadata["Name"]


class Distribution:
    """The part of a ``pkg_resources.Distribution`` that sacred reads."""

    def __init__(self, dist: importlib.metadata.Distribution, name: str) -> None:
        self._dist = dist
        self.project_name = safe_name(name)
        self.key = self.project_name.lower()
        self.version: str = dist.version

    def _get_metadata(self, name: str) -> Iterator[str]:
        """The lines of metadata file ``name`` as ``pkg_resources`` yields them (stripped, no
        blank or ``#`` lines); none when the file is absent."""
        text = self._dist.read_text(name) or ""
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                yield line

    def __repr__(self) -> str:
        return f"{self.project_name} {self.version}"


class WorkingSet:
    """The installed distributions, first on ``sys.path`` first, one per key (as
    ``pkg_resources.working_set``), read once on first use."""

    def __iter__(self) -> Iterator[Distribution]:
        return iter(list(self.by_key.values()))

    @functools.cached_property
    def by_key(self) -> dict[str, Distribution]:
        by_key: dict[str, Distribution] = {}
        for dist in importlib.metadata.distributions():
            name = project_name(dist)
            if not name or dist.version is None:
                continue  # a broken install without metadata: nothing sacred could record
            entry = Distribution(dist, name)
            by_key.setdefault(entry.key, entry)
        return by_key


def resource_filename(package: str, resource: str) -> str:
    """``pkg_resources.resource_filename`` for a package installed as files."""
    return str(importlib.resources.files(package).joinpath(resource))


def _make_shim() -> types.ModuleType:
    shim = types.ModuleType(
        "pkg_resources", "capreolus_opt's stand-in for what sacred reads of pkg_resources."
    )
    shim.working_set = WorkingSet()  # type: ignore[attr-defined]
    shim.resource_filename = resource_filename  # type: ignore[attr-defined]
    shim.safe_name = safe_name  # type: ignore[attr-defined]
    shim.Distribution = Distribution  # type: ignore[attr-defined]
    shim.WorkingSet = WorkingSet  # type: ignore[attr-defined]
    return shim


#: The stand-in sacred's modules see as ``pkg_resources``.
SHIM = _make_shim()

_MISSING = object()


class _ShimmedLoader(importlib.abc.Loader):
    """Runs a sacred module with :data:`SHIM` as ``pkg_resources``; delegates everything else."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        previous = sys.modules.get("pkg_resources", _MISSING)
        sys.modules["pkg_resources"] = SHIM
        try:
            self._loader.exec_module(module)
        finally:
            if previous is _MISSING:
                sys.modules.pop("pkg_resources", None)
            else:
                sys.modules["pkg_resources"] = previous

    def __getattr__(self, name: str) -> Any:
        # get_source, get_code, get_filename ...: tracebacks and inspect read through these.
        return getattr(self._loader, name)


class _SacredFinder(importlib.abc.MetaPathFinder):
    """Finds sacred's pkg_resources-importing modules with the other finders and wraps their
    loader in :class:`_ShimmedLoader`."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in SACRED_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ShimmedLoader(spec.loader)
        return spec


def install() -> None:
    """Make sacred use :data:`SHIM` for ``pkg_resources`` (idempotent).

    Sacred modules imported later are loaded with the stand-in; ones already imported (a script
    that imported sacred first, with a real ``pkg_resources``) are pointed at it, so every run
    of this process records versions the same way.
    """
    if not any(isinstance(finder, _SacredFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SacredFinder())
    for name in SACRED_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "pkg_resources"):
            module.pkg_resources = SHIM
