"""The only package that imports gin: the factories gin files name, config parsing and checks,
the recorded hyperparameters, and the run's entry into the configured library.

Modules, one job each: :mod:`~capreolus_opt.config.registry` (registers every gin factory),
:mod:`~capreolus_opt.config.includes` (``include`` resolved beside the including file),
:mod:`~capreolus_opt.config.parse` (parse, read back), :mod:`~capreolus_opt.config.typecheck`
(required, type and range checks at parse time), :mod:`~capreolus_opt.config.values` (the
range rules), :mod:`~capreolus_opt.config.hparams` (flattening for the record),
:mod:`~capreolus_opt.config.entry` (input checks before a run is recorded, then training) and
:mod:`~capreolus_opt.config.gin_compat` (every private gin name we read, with a version check).

This package is the backend a tracked run uses (:func:`capreolus_opt.tracking.run.run_tracked`):
``parse_config``, ``flat_hyperparameters``, ``config_text``, ``validate_inputs``,
``run_training``, ``operative_config_text``, ``configured`` and ``STEPS_PARAM``. Importing it
imports TensorFlow.
"""

from __future__ import annotations

from capreolus_opt.config import registry  # noqa: F401  registers the factories
from capreolus_opt.config.entry import STEPS_PARAM, run_training, validate_inputs
from capreolus_opt.config.errors import GinConfigError
from capreolus_opt.config.hparams import flat_hyperparameters
from capreolus_opt.config.parse import (
    config_text,
    configured,
    operative_config_text,
    parse_config,
)
from capreolus_opt.config.typecheck import check_bindings
from capreolus_opt.config.values import VALUE_RULES, Bound, OneOf

__all__ = [
    "STEPS_PARAM",
    "VALUE_RULES",
    "Bound",
    "GinConfigError",
    "OneOf",
    "check_bindings",
    "config_text",
    "configured",
    "flat_hyperparameters",
    "operative_config_text",
    "parse_config",
    "run_training",
    "validate_inputs",
]
