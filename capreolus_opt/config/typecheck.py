"""Checks on what was parsed that gin itself makes only when a function is called, mid-run:
bindings left at ``%gin.REQUIRED``, values of the wrong type for a parameter of one of our
factories (their explicit signatures say what each takes) and values outside the parameter's
:data:`~capreolus_opt.config.values.VALUE_RULES`."""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import gin
import gin.config

from capreolus_opt.config import gin_compat
from capreolus_opt.config.errors import GinConfigError
from capreolus_opt.config.registry import display_name
from capreolus_opt.config.values import VALUE_RULES


def check_bindings() -> None:
    """Refuse a binding left at ``%gin.REQUIRED``, of the wrong type, or out of its value rule.

    Raises:
        GinConfigError: naming the binding, its value and what was expected.
    """
    for (scope, selector), params in gin_compat.bindings().items():
        if selector.startswith("gin."):
            continue
        configurable = gin_compat.find_configurable(selector)
        hints = _type_hints(configurable.wrapped) if configurable is not None else {}
        shown = (scope + "/" if scope else "") + display_name(selector)
        for param, raw in params.items():
            value = macro_value(raw)
            if value is gin.REQUIRED:
                raise GinConfigError(
                    f"gin binding {shown}.{param} is %gin.REQUIRED and no file or --gin_param "
                    f"gives it a value (add e.g. --gin_param '{shown}.{param} = ...')."
                )
            hint = hints.get(param)
            if hint is not None and not _matches(value, hint):
                raise GinConfigError(
                    f"gin binding {shown}.{param} = {value!r} has type {type(value).__name__}; "
                    f"expected {_hint_text(hint)}."
                )
            rule = VALUE_RULES.get(param) if param in hints else None
            expected = None
            if rule is not None and not isinstance(value, gin.config.ConfigurableReference):
                expected = rule.problem(value)
            if expected:
                raise GinConfigError(
                    f"gin binding {shown}.{param} = {value!r}: expected {expected}."
                )


def macro_value(value: Any) -> Any:
    """The value behind a macro or constant reference (``%X``, ``%gin.REQUIRED``); references
    to configurables are returned as they are."""
    for _ in range(32):  # macros may refer to macros; a cycle is gin's own error later
        if not isinstance(value, gin.config.ConfigurableReference):
            return value
        fn = value.configurable.wrapped
        if gin_compat.is_macro_or_constant(fn):
            value = value.scoped_configurable_fn()
        else:
            return value
    return value


def _type_hints(fn: Callable) -> dict[str, Any]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:  # an annotation we cannot evaluate is simply not checked
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` can be passed for ``hint``; only plain scalar hints are checked."""
    if isinstance(value, gin.config.ConfigurableReference):
        return True  # what a reference returns is known only when it is called
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if origin in (list, tuple, Sequence, collections.abc.Sequence) or hint in (list, tuple):
        return isinstance(value, list | tuple)
    if inspect.isclass(hint) and origin is None and hint is not typing.Any:
        return isinstance(value, hint)  # e.g. a LearningRateSchedule, never a string
    return True  # Any, callables, parameterised generics: not checked here


def _hint_text(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_hint_text(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", str(hint))
