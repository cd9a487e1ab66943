"""The run's entry into the configured library: input checks before a run is recorded, then the
gin-configured training."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import gin
import gin.config

from capreolus_opt import training as _training
from capreolus_opt.config.errors import GinConfigError
from capreolus_opt.config.parse import configured, is_bound
from capreolus_opt.config.registry import MODULE, signature_defaults
from capreolus_opt.config.typecheck import macro_value

#: The binding that sets how many steps a run trains (``train --resume`` of a COMPLETED run must
#: raise it).
STEPS_PARAM = "train.num_steps"


def run_training(*, workdir: str, sink: Any = None, on_start: Callable | None = None) -> Any:
    """Calls the gin-configured :func:`capreolus_opt.training.train` (after
    :func:`~capreolus_opt.config.parse.parse_config`).

    Resumes from the latest checkpoint in ``workdir`` when there is one.
    """
    train = gin.get_configurable(f"{MODULE}.train")
    return train(workdir=workdir, sink=sink, on_start=on_start)


# gin appends "In call to configurable 'X' (<function ...>)" to an error raised inside a call.
_GIN_CALL_SUFFIX = re.compile(r"\s*In call to configurable '[^']*' \(<[^>]*>\)")


def validate_inputs() -> list[str]:
    """See :func:`_validate_inputs`; errors are :class:`GinConfigError` (a ``ValueError``) with
    gin's call suffix removed, so the message names the value alone."""
    try:
        return _validate_inputs()
    except (ValueError, TypeError, RuntimeError) as err:
        if isinstance(err, GinConfigError):
            raise
        raise GinConfigError(_GIN_CALL_SUFFIX.sub("", str(err))) from err


def _validate_inputs() -> list[str]:
    """Everything a run will use, checked before it is recorded (exit 2, nothing recorded):
    the bound AdamMultilr scalars; the configured strategy (built first: it may configure
    logical devices, which must precede TensorFlow's runtime); the task, built, and its
    ``validate_inputs()`` (if it has one); then :func:`capreolus_opt.training.preflight.preflight`
    on ``train``'s arguments (the loop's plan against the strategy, the optimizer built in its
    scope, schedules over the run's steps, a ``strict`` optimizer's groups against the model).
    Data sources keep what they read for the run itself (``TrecRerankingData`` memoises per
    process); ``make_strategy`` returns the same strategy to the run.

    Returns:
        Warnings for values that are legal but almost surely mistakes (one line each).
    """
    _check_optimizer_bindings()
    if not _bound("train.task"):  # no train.task bound: the run itself reports that
        return []
    strategy = configured("train.strategy") if _bound("train.strategy") else None
    task = configured("train.task")
    validate = getattr(task, "validate_inputs", None)
    if validate is not None:
        validate()
    if strategy is None or not _bound("train.optimizer"):
        return []
    from capreolus_opt.training.preflight import preflight

    arguments = dict(signature_defaults(_training.train))
    for name in list(arguments) + ["num_steps", "global_batch_size", "seed"]:
        if _bound(f"train.{name}"):
            arguments[name] = configured(f"train.{name}")
    arguments.pop("progress", None)
    if not {"num_steps", "global_batch_size", "seed"} <= set(arguments):
        return []  # a required train argument is unbound: gin names it when the run calls train
    return preflight(
        strategy=strategy,
        optimizer=configured("train.optimizer"),
        task=task,
        check_model=True,
        **arguments,
    )


def _bound(param: str) -> bool:
    return is_bound(f"{MODULE}.{param}")


def _check_optimizer_bindings() -> None:
    """The constructor's own scalar checks on the explicit ``AdamMultilr.*`` bindings, in plain
    Python: building the optimizer here would run TensorFlow ops before the strategy exists."""
    from capreolus_opt.optimizer import arguments
    from capreolus_opt.optimizer.groups import check_lr

    checks = {
        "learning_rate": lambda v, w: check_lr(v, w),
        "weight_decay": arguments.check_weight_decay,
        "beta_1": arguments.check_beta,
        "beta_2": arguments.check_beta,
        "epsilon": lambda v, w: arguments.check_epsilon(v),
        "strict": arguments.check_bool,
        "fused": arguments.check_bool,
        "amsgrad": arguments.check_bool,
    }
    for name, check in checks.items():
        try:
            value = macro_value(gin.query_parameter(f"{MODULE}.AdamMultilr.{name}"))
        except ValueError:  # not bound: the signature default, which is valid
            continue
        if isinstance(value, gin.config.ConfigurableReference):
            continue  # e.g. a schedule, checked when it exists
        try:
            check(value, f"AdamMultilr.{name}")
        except (TypeError, ValueError) as err:
            raise GinConfigError(f"gin binding AdamMultilr.{name}: {err}") from None
