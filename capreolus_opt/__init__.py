"""capreolus_opt: per-group learning rates for Keras 3 / TensorFlow, with gin and Sacred.

The public API is re-exported here lazily, so that ``capreolus-opt --help`` and ``import
capreolus_opt`` do not pay for importing TensorFlow until an attribute that needs it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "AdamMultilr": "capreolus_opt.optimizer",
    "GroupTable": "capreolus_opt.optimizer",
    "load_runs": "capreolus_opt.records.load",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'capreolus_opt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
