"""The hyperparameters a run records: every binding in effect, flattened to ``(name, value)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gin
import gin.config

from capreolus_opt.config import gin_compat
from capreolus_opt.config.registry import display_name, signature_defaults


def flat_hyperparameters() -> list[tuple[str, Any]]:
    """Every hyperparameter in effect after parsing, as sorted ``(name, JSON-able value)`` pairs.

    Names follow gin's binding syntax without our module prefix (``AdamMultilr.learning_rate``,
    ``train/schedules.CosineDecay.decay_steps`` for a scoped binding). Besides explicit bindings,
    the signature defaults of every bound or referenced configurable are included, so two runs
    compare on the values they actually used. Every name is one a user can bind with
    ``--gin_param`` and sweep with ``sweep --grid``: a nested value (a list of group dicts, a
    ``{regex: lr}`` dict) is recorded whole, as its gin text, and references as their gin text
    (``@RerankingTask()``), the bindings of what they reference under their own names (so
    ``@encoder/lr_group()`` records ``encoder/lr_group.lr``). Pairs rather than a dict: Sacred and
    MongoDB reject keys with ".".
    """
    config = gin_compat.bindings()
    flat: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    pending = [key for key in config if not key[1].startswith("gin.")]
    while pending:
        scope, selector = pending.pop()
        if (scope, selector) in seen:
            continue
        seen.add((scope, selector))
        configurable = gin_compat.find_configurable(selector)
        if configurable is None:
            continue
        prefix = (scope + "/" if scope else "") + display_name(configurable.selector)
        values = dict(signature_defaults(configurable.wrapped))
        values.update(config.get((scope, selector), {}))
        for param, value in values.items():
            for ref in _references(value):
                if not ref.configurable.selector.startswith("gin."):
                    pending.append(("/".join(ref.scopes), ref.configurable.selector))
            _flatten(f"{prefix}.{param}", value, flat)
    return sorted(flat.items())


def _references(value: Any) -> Iterable[gin.config.ConfigurableReference]:
    if isinstance(value, gin.config.ConfigurableReference):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _references(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _references(v)


_NESTED = (dict, list, tuple, gin.config.ConfigurableReference)


def _flatten(name: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, gin.config.ConfigurableReference):
        if value.configurable.wrapped is gin.config.macro:
            _flatten(name, gin.query_parameter(repr(value)), out)
        else:
            out[name] = repr(value)
    elif isinstance(value, dict) or (
        isinstance(value, list | tuple) and any(isinstance(v, _NESTED) for v in value)
    ):
        # `X.p[0].lr` is no binding gin can parse: record the whole value under `X.p` instead.
        out[name] = _gin_text(value)
    elif isinstance(value, list | tuple):
        out[name] = [_scalar(v) for v in value]
    else:
        out[name] = _scalar(value)


def _gin_text(value: Any) -> str:
    """``value`` as gin would parse it back (references as ``@name()``, literals as Python)."""
    if isinstance(value, gin.config.ConfigurableReference):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_gin_text(k)}: {_gin_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_gin_text(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_gin_text(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)
