"""A search's ``--space`` and ``--metric`` checked against its gin config before any study exists.

A misspelt binding (``AdamMultilr.learnig_rate``), a macro the config never uses (``ENCODR_LR``),
a choice gin cannot parse, or a metric the task never logs (``eval/ndgc@10``) would otherwise be
found only after a trial was created, or trained, and the study's name would stay tied to the
typo. :func:`check_search` parses the config with every dimension bound (ranges at both bounds,
each categorical choice in turn) and asks the configured task which ``eval/`` names it logs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from capreolus_opt.search.space import Dimension

_MACRO = re.compile(r"[A-Z][A-Z0-9_]*")


def _values(dim: Dimension) -> list[str]:
    if dim.kind == "categorical":
        return list(dim.texts)
    if dim.kind == "int":
        return [str(int(dim.low)), str(int(dim.high))]
    return [repr(float(dim.low)), repr(float(dim.high))]


def check_space(
    config: Sequence[str], gin_param: Sequence[str], dims: Sequence[Dimension], backend: Any
) -> None:
    """Raise ValueError naming the ``--space`` whose binding or value the config refuses."""
    backend.parse_config(list(config), list(gin_param))  # the config itself, named if bad
    text = backend.config_text()
    for dim in dims:
        if _MACRO.fullmatch(dim.name) and not re.search(rf"%{dim.name}\b", text):
            raise ValueError(
                f"--space {dim.spec()!r}: the config never uses the macro %{dim.name} (a typo? "
                "expected a macro referenced as %NAME in the gin files, or a binding "
                "Configurable.param)"
            )
        for value in _values(dim):
            try:
                backend.parse_config(list(config), [*gin_param, f"{dim.name} = {value}"])
            except ValueError as err:
                raise ValueError(f"--space {dim.spec()!r}: {err}") from None


def check_metric(metric: str, backend: Any) -> None:
    """Raise ValueError unless the configured task logs ``metric`` (``eval/NAME``).

    Tasks without ``eval_metric_names()`` are not checked here (the worker still stops at the
    first trial whose run never logged the metric).
    """
    try:
        task = backend.configured("train.task")
    except ValueError:  # no train.task bound: the run itself reports it
        return
    names_of = getattr(task, "eval_metric_names", None)
    if names_of is None:
        return
    names = list(names_of())
    if metric.removeprefix("eval/") not in names:
        known = ", ".join(f"eval/{n}" for n in names)
        raise ValueError(f"--metric {metric!r}: the configured task logs {known}")


def check_search(spec: Any, dims: Sequence[Dimension], backend: Any, *, metric: bool) -> None:
    """:func:`check_space`, then (``metric``) :func:`check_metric` with the config as given."""
    check_space(spec.config, spec.gin_param, dims, backend)
    if metric:
        backend.parse_config(list(spec.config), list(spec.gin_param))
        check_metric(spec.metric, backend)
