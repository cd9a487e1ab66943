"""Sacred glue: experiment factory, observers from URLs, SQL observer with metrics, metrics sink.

Exports are lazy so that importing the ``train`` command (for ``--help``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from capreolus_opt.tracking import sacred_compat

# Before any module of this package imports sacred: sacred 0.8.7 needs pkg_resources.
sacred_compat.install()

_EXPORTS = {
    "make_experiment": "capreolus_opt.tracking.experiment",
    "SacredMetricsSink": "capreolus_opt.tracking.sink",
    "SqlMetricsObserver": "capreolus_opt.tracking.sql_observer",
    "observer_from_url": "capreolus_opt.tracking.urls",
    "observers_from_urls": "capreolus_opt.tracking.urls",
    "check_reachable": "capreolus_opt.tracking.urls",
    "ObserverUnreachableError": "capreolus_opt.tracking.urls",
    "mask_url": "capreolus_opt.storage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'capreolus_opt.tracking' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
