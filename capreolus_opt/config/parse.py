"""Parsing a config (files, then bindings) into gin, and reading back what was parsed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gin
import gin.config

from capreolus_opt.config.errors import GinConfigError
from capreolus_opt.config.includes import parse_file
from capreolus_opt.config.typecheck import check_bindings


def parse_config(gin_files: Sequence[str], gin_bindings: Sequence[str]) -> None:
    """Clears gin's bindings, then parses ``gin_files`` in order and ``gin_bindings`` after them.

    ``include`` statements resolve beside the including file, at any depth, before gin's search
    path and the working directory. A tracked run calls this once
    (:func:`capreolus_opt.tracking.run.run_tracked`) and passes the parsed result down.

    Raises:
        GinConfigError: a file is missing, a file or binding does not parse, a binding is left at
            ``%gin.REQUIRED``, or a bound value has the wrong type for its parameter (a string
            where a float is expected); the message names the file or binding. gin holds no
            bindings afterwards.
    """
    gin.clear_config()
    try:
        for path in gin_files:
            parse_file(path)
        for binding in gin_bindings:
            try:
                gin.parse_config(binding)
            except Exception as err:
                raise GinConfigError(f"could not parse gin binding {binding!r}: {err}") from err
        check_bindings()
    except GinConfigError:
        gin.clear_config()
        raise


def configured(param: str) -> Any:
    """Evaluates the binding ``param`` (e.g. ``"train.task"``) as gin would when calling.

    Evaluated references (``@RerankingTask()``) are called, uncalled references (``@AdamMultilr``)
    are returned as the configurable callable, macros are resolved.
    """
    return _resolve(gin.query_parameter(param))


def is_bound(param: str) -> bool:
    """Whether ``param`` (e.g. ``"capreolus_opt.train.task"``) has a binding."""
    try:
        gin.query_parameter(param)
    except ValueError:
        return False
    return True


def _resolve(value: Any) -> Any:
    if isinstance(value, gin.config.ConfigurableReference):
        fn = value.scoped_configurable_fn
        return fn() if value.evaluate else fn
    if isinstance(value, list | tuple):
        return type(value)(_resolve(v) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


def config_text() -> str:
    """Everything parsed (``gin.config_str()``)."""
    return gin.config_str()


def operative_config_text() -> str:
    """Only the parameters that were used, after they were used (``gin.operative_config_str()``)."""
    return gin.operative_config_str()
