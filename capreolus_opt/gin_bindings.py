"""The one module that imports gin: registers our factories and runs the configured training.

Library code (optimizer, training, models, data) stays gin-free and takes plain keyword arguments;
this module attaches gin at the edge (t5x's habit). Every factory has an explicit signature, so a
misspelt binding such as ``AdamMultilr.learnig_rate = 1e-3`` fails when the file is parsed, with
gin's message naming the parameter, instead of failing at construction (Keras constructors take
``**kwargs``; docs/STACK_FACTS.md §4). We never ``import gin.tf`` (it needs ``tf.estimator``,
gone since TF 2.16).

Names in gin files:

- ``AdamMultilr``: the optimizer (``train.optimizer = @AdamMultilr``: an uncalled reference, so the
  training loop constructs it inside ``strategy.scope()``).
- ``lr_group``: one group of ``pattern_lrs`` named by its scope
  (``AdamMultilr.pattern_lrs = [@encoder/lr_group()]``, ``encoder/lr_group.lr = 1e-4``), so that
  each group's rate is a binding of its own, bindable and sweepable by name.
- ``schedules.ExponentialDecay | PolynomialDecay | CosineDecay | PiecewiseConstantDecay``: Keras
  learning-rate schedules, usable as a group lr inside ``pattern_lrs``;
  ``schedules.LinearWarmupDecay`` (ours: linear warm-up, then linear decay), the fine-tuning
  schedule of the BERT configs.
- ``make_strategy``, ``train``: the training layer.
- ``RerankingTask``, ``SyntheticRankingData``, ``TsvRankingData``, ``TrecRerankingData``: the
  example task and its data;
  ``layerwise_decay_pattern_lrs`` (``AdamMultilr.pattern_lrs = @layerwise_decay_pattern_lrs()``);
  with the ``hub`` extra, ``RerankingTask.model_builder = @bert_reranker_builder()`` and
  ``TsvRankingData.tokenizer = @bert_wordpiece_tokenizer()`` (the preset's own WordPiece);
  ``RerankingTask.model_builder = @dual_encoder_builder()`` for the BERT dual encoder.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import logging
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gin
import keras

from capreolus_opt import training as _training
from capreolus_opt.data.synthetic import SyntheticRankingData
from capreolus_opt.data.trec.data import TrecRerankingData
from capreolus_opt.data.tsv import TsvRankingData

# keras_hub and tokenizers are imported only when these are called (extra `hub`).
from capreolus_opt.models.bert import bert_reranker_builder, bert_wordpiece_tokenizer
from capreolus_opt.models.dual_encoder import dual_encoder_builder
from capreolus_opt.models.layerwise import layerwise_decay_pattern_lrs
from capreolus_opt.models.reranker import RerankingTask
from capreolus_opt.optimizer import AdamMultilr
from capreolus_opt.training.precision import AUTO, POLICIES
from capreolus_opt.training.strategy import KINDS

_MODULE = "capreolus_opt"


class GinConfigError(ValueError):
    """A gin file or binding could not be parsed; the message names the file or binding."""


# --- optimizer -------------------------------------------------------------------------------
@gin.register("AdamMultilr", module=_MODULE)
def adam_multilr(
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 0.001,
    pattern_lrs: Any = None,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    strict: bool = False,
    fused: bool = True,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str = "AdamMultilr",
) -> AdamMultilr:
    """Builds :class:`capreolus_opt.AdamMultilr`; every argument is passed through unchanged.

    The signature repeats the constructor's (explicit, so gin rejects a typo at parse time);
    ``tests/test_gin_bindings.py`` fails when the two drift apart.
    """
    return AdamMultilr(
        learning_rate=learning_rate,
        pattern_lrs=pattern_lrs,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        amsgrad=amsgrad,
        strict=strict,
        fused=fused,
        weight_decay=weight_decay,
        clipnorm=clipnorm,
        clipvalue=clipvalue,
        global_clipnorm=global_clipnorm,
        use_ema=use_ema,
        ema_momentum=ema_momentum,
        ema_overwrite_frequency=ema_overwrite_frequency,
        loss_scale_factor=loss_scale_factor,
        gradient_accumulation_steps=gradient_accumulation_steps,
        name=name,
    )


@gin.register("lr_group", module=_MODULE)
def lr_group(
    patterns: str | Sequence[str],
    lr: float | keras.optimizers.schedules.LearningRateSchedule | None = None,
    lr_mult: float | None = None,
    weight_decay: float | None = None,
    wd_mult: float | None = None,
    unfreeze_at: int | str | None = None,
    unfreeze_warmup: int = 0,
) -> dict[str, Any]:
    """One ``pattern_lrs`` group whose name is its gin scope, so each rate has a bindable name.

    ``AdamMultilr.pattern_lrs = [@encoder/lr_group(), @head/lr_group()]`` with
    ``encoder/lr_group.patterns = ["^encoder/"]`` and ``encoder/lr_group.lr = 1e-4`` makes the
    group ``"encoder"``; ``--gin_param 'encoder/lr_group.lr = 3e-5'`` and
    ``sweep --grid 'encoder/lr_group.lr=[1e-5, 3e-5]'`` change that one rate, and runs record it
    under exactly that name. Give exactly one of ``lr`` and ``lr_mult`` (validated by
    :class:`AdamMultilr`, naming the group); ``unfreeze_at`` (a step or ``"manual"``) and
    ``unfreeze_warmup`` schedule the group's unfreezing.
    """
    scopes = gin.current_scope()
    if not scopes:
        raise ValueError(
            "lr_group must be referenced with a scope naming the group, e.g. "
            "AdamMultilr.pattern_lrs = [@encoder/lr_group()]"
        )
    group: dict[str, Any] = {"name": scopes[-1], "patterns": patterns}
    optional = {
        "lr": lr,
        "lr_mult": lr_mult,
        "weight_decay": weight_decay,
        "wd_mult": wd_mult,
        "unfreeze_at": unfreeze_at,
        "unfreeze_warmup": unfreeze_warmup or None,
    }
    group.update({key: value for key, value in optional.items() if value is not None})
    return group


# --- learning-rate schedules (factories, so Keras serialises the real classes) ----------------
_schedules = keras.optimizers.schedules


@gin.register("ExponentialDecay", module="schedules")
def exponential_decay(
    initial_learning_rate: float,
    decay_steps: int,
    decay_rate: float,
    staircase: bool = False,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """``lr * decay_rate ** (step / decay_steps)`` (floored when ``staircase``)."""
    return _schedules.ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase)


@gin.register("PolynomialDecay", module="schedules")
def polynomial_decay(
    initial_learning_rate: float,
    decay_steps: int,
    end_learning_rate: float = 0.0001,
    power: float = 1.0,
    cycle: bool = False,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate``."""
    return _schedules.PolynomialDecay(
        initial_learning_rate, decay_steps, end_learning_rate, power, cycle
    )


@gin.register("CosineDecay", module="schedules")
def cosine_decay(
    initial_learning_rate: float,
    decay_steps: int,
    alpha: float = 0.0,
    warmup_target: float | None = None,
    warmup_steps: int = 0,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Cosine decay with an optional linear warm-up to ``warmup_target``."""
    return _schedules.CosineDecay(
        initial_learning_rate,
        decay_steps,
        alpha=alpha,
        warmup_target=warmup_target,
        warmup_steps=warmup_steps,
    )


@gin.register("LinearWarmupDecay", module="schedules")
def linear_warmup_decay(
    peak_learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    end_learning_rate: float = 0.0,
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up to ``peak_learning_rate`` over ``warmup_steps``, then linear decay to
    ``end_learning_rate`` at ``total_steps`` (``optimizer/schedules.py``)."""
    from capreolus_opt.optimizer.schedules import LinearWarmupDecay

    return LinearWarmupDecay(
        peak_learning_rate,
        total_steps,
        warmup_steps=warmup_steps,
        end_learning_rate=end_learning_rate,
    )


@gin.register("PiecewiseConstantDecay", module="schedules")
def piecewise_constant_decay(
    boundaries: Sequence[int], values: Sequence[float]
) -> keras.optimizers.schedules.LearningRateSchedule:
    """``values[i]`` while the step is in ``(boundaries[i-1], boundaries[i]]``."""
    return _schedules.PiecewiseConstantDecay(list(boundaries), list(values))


# --- training, task, data: the library functions have explicit keyword-only signatures ------
# The entry points pass workdir, sink and on_start; they are not hyperparameters.
_RUNTIME_ARGS = ("workdir", "sink", "on_start")
gin.register("make_strategy", module=_MODULE)(_training.make_strategy)
gin.register("train", module=_MODULE, denylist=_RUNTIME_ARGS)(_training.train)
gin.register("RerankingTask", module=_MODULE)(RerankingTask)
gin.register("SyntheticRankingData", module=_MODULE)(SyntheticRankingData)
gin.register("TsvRankingData", module=_MODULE)(TsvRankingData)
gin.register("TrecRerankingData", module=_MODULE)(TrecRerankingData)
gin.register("bert_reranker_builder", module=_MODULE)(bert_reranker_builder)
gin.register("bert_wordpiece_tokenizer", module=_MODULE)(bert_wordpiece_tokenizer)
gin.register("dual_encoder_builder", module=_MODULE)(dual_encoder_builder)
gin.register("layerwise_decay_pattern_lrs", module=_MODULE)(layerwise_decay_pattern_lrs)


#: The binding that sets how many steps a run trains (``train --resume`` of a COMPLETED run must
#: raise it).
STEPS_PARAM = "train.num_steps"


# --- parsing and running -----------------------------------------------------------------------
def parse_config(gin_files: Sequence[str], gin_bindings: Sequence[str]) -> None:
    """Clears gin's bindings, then parses ``gin_files`` in order and ``gin_bindings`` after them.

    A run parses its config once: calling again with the same files and bindings while gin still
    holds what the last call parsed does nothing (the train command, Sacred's config hook and the
    run itself all ask for it). ``include`` statements resolve beside the including file, at any
    depth, before gin's search path and the working directory.

    Raises:
        GinConfigError: a file is missing, a file or binding does not parse, a binding is left at
            ``%gin.REQUIRED``, or a bound value has the wrong type for its parameter (a string
            where a float is expected); the message names the file or binding.
    """
    global _LAST_PARSED
    key = (tuple(gin_files), tuple(gin_bindings))
    if _LAST_PARSED is not None and _LAST_PARSED[0] == key and _LAST_PARSED[1] == gin.config_str():
        return
    _LAST_PARSED = None
    gin.clear_config()
    try:
        for path in gin_files:
            _parse_file(path)
        for binding in gin_bindings:
            try:
                gin.parse_config(binding)
            except Exception as err:
                raise GinConfigError(f"could not parse gin binding {binding!r}: {err}") from err
        check_bindings()
    except GinConfigError:
        gin.clear_config()
        raise
    _LAST_PARSED = (key, gin.config_str())


_LAST_PARSED: tuple[tuple, str] | None = None
_INCLUDE = re.compile(r"""^\s*include\s+(['"])(.+?)\1""", re.MULTILINE)


def _parse_file(path: str) -> None:
    if not os.path.isfile(path):
        raise GinConfigError(f"gin file {path!r} does not exist (expected a readable file)")
    # gin resolves `include 'x.gin'` against _LOCATION_PREFIXES (the cwd, then search paths),
    # not beside the including file, and has no public API for it: a user file that includes a
    # shipped config by absolute path broke on that config's own `include 'quickstart.gin'`.
    prefixes = gin.config._LOCATION_PREFIXES
    _refuse_include_cycle(os.path.abspath(path), [])
    folders = _include_folders(os.path.abspath(path))
    prefixes[0:0] = folders
    # gin's package-resource reader logs "Path not found" (root logger) for every folder tried
    # before the one that holds an include; those misses are expected here.
    root = logging.getLogger()
    root.addFilter(_quiet_path_misses)
    try:
        gin.parse_config_file(os.path.abspath(path))
    except Exception as err:  # gin raises ValueError, KeyError, SyntaxError, ImportError...
        raise GinConfigError(f"could not parse gin file {path!r}: {err}") from err
    finally:
        root.removeFilter(_quiet_path_misses)
        del prefixes[0 : len(folders)]


def _quiet_path_misses(record: logging.LogRecord) -> bool:
    return record.msg != "Path not found: %s"


def _included_files(path: str) -> list[str]:
    """The files ``path`` includes that exist, resolved beside ``path`` (absolute paths)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    out = []
    for match in _INCLUDE.finditer(text):
        target = os.path.join(os.path.dirname(path), match.group(2))
        if os.path.isfile(target):
            out.append(os.path.abspath(target))
    return out


def _refuse_include_cycle(path: str, chain: list[str]) -> None:
    # gin follows includes without a guard: a file that includes itself, directly or through
    # others, ends in a RecursionError deep inside gin's parser.
    if path in chain:
        cycle = " -> ".join([*chain[chain.index(path) :], path])
        raise GinConfigError(f"gin file {path!r} includes itself ({cycle}); expected no cycles")
    for included in _included_files(path):
        _refuse_include_cycle(included, [*chain, path])


def _include_folders(path: str) -> list[str]:
    """The folders of ``path`` and of every file it includes, transitively, in include order."""
    folders: list[str] = []
    pending, seen = [path], set()
    while pending:
        current = pending.pop(0)
        if current in seen or not os.path.isfile(current):
            continue
        seen.add(current)
        folder = os.path.dirname(current)
        if folder not in folders:
            folders.append(folder)
        with open(current, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        for match in _INCLUDE.finditer(text):
            target = match.group(2)
            candidates = [target] if os.path.isabs(target) else [
                os.path.join(f, target) for f in folders
            ]  # fmt: skip
            pending.extend(os.path.abspath(c) for c in candidates if os.path.isfile(c))
    return folders


@dataclasses.dataclass(frozen=True)
class Bound:
    """A numeric range a parameter's value must lie in (None: that side is open-ended)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range (None: in range, None, or not a number)."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if not (below or above):
            return None
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high}")
        return "a value " + " and ".join(parts)


@dataclasses.dataclass(frozen=True)
class OneOf:
    """The parameter takes one of ``choices``."""

    choices: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.choices else f"one of {list(self.choices)}"


# Range rules by parameter name, applied to that parameter of every registered factory whose
# signature has it (the annotation gives the type, checked first; this gives the range). Values
# a constructor checks itself when built (the task, its data) are also refused here, when parsed.
VALUE_RULES: dict[str, Bound | OneOf] = {
    # train (training/loop.py, training/plan.py)
    "num_steps": Bound(0),
    "global_batch_size": Bound(1),
    "seed": Bound(0),
    "steps_per_loop": Bound(1),
    "metrics_every": Bound(0),  # 0: no training metrics (off)
    "eval_every": Bound(0),  # 0: evaluate only at the end
    "checkpoint_every": Bound(0),  # 0: checkpoint only at the end
    "max_checkpoints_to_keep": Bound(1),
    "mixed_precision": OneOf((None, *POLICIES, AUTO)),
    # make_strategy
    "kind": OneOf(KINDS),
    "num_cpu_devices": Bound(1),
    # AdamMultilr (learning_rate, betas, epsilon, weight_decay: optimizer/arguments.py)
    "ema_momentum": Bound(0.0, 1.0),
    "ema_overwrite_frequency": Bound(1),
    "gradient_accumulation_steps": Bound(1),
    "clipnorm": Bound(0.0, low_open=True),
    "clipvalue": Bound(0.0, low_open=True),
    "global_clipnorm": Bound(0.0, low_open=True),
    "loss_scale_factor": Bound(0.0, low_open=True),
    # lr_group and schedules
    "unfreeze_warmup": Bound(0),
    "decay_steps": Bound(1),
    "decay_rate": Bound(0.0, low_open=True),
    "warmup_steps": Bound(0),
    "alpha": Bound(0.0, 1.0),
    "power": Bound(0.0, low_open=True),
    # models and data
    "hidden_dim": Bound(1),
    "num_layers": Bound(1),
    "num_heads": Bound(1),
    "intermediate_dim": Bound(1),
    "dropout": Bound(0.0, 1.0, high_open=True),
    "eval_batch_size": Bound(1),
    "metrics_cutoff": Bound(1),
    "vocab_size": Bound(1),
    "max_query_length": Bound(1),
    "max_doc_length": Bound(1),
    "max_vocab_size": Bound(1),
    "top_k": Bound(1),
    "samples_per_query": Bound(1),
}


def check_bindings() -> None:
    """Refuse bindings left at ``%gin.REQUIRED``, values of the wrong type for a parameter of
    one of our factories (their explicit signatures say what each takes) and values outside the
    parameter's :data:`VALUE_RULES`; gin itself only finds any of these when the function is
    called, mid-run.

    Raises:
        GinConfigError: naming the binding, its value and what was expected.
    """
    config: dict[tuple[str, str], dict[str, Any]] = gin.config._CONFIG
    for (scope, selector), params in config.items():
        if selector.startswith("gin."):
            continue
        configurable = gin.config._REGISTRY.get_match(selector)
        hints = _type_hints(configurable.wrapped) if configurable is not None else {}
        shown = (scope + "/" if scope else "") + _display(selector)
        for param, raw in params.items():
            value = _macro_value(raw)
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


def _macro_value(value: Any) -> Any:
    """The value behind a macro or constant reference (``%X``, ``%gin.REQUIRED``); references
    to configurables are returned as they are."""
    for _ in range(32):  # macros may refer to macros; a cycle is gin's own error later
        if not isinstance(value, gin.config.ConfigurableReference):
            return value
        fn = value.configurable.wrapped
        if fn is gin.config.macro or fn is gin.config._retrieve_constant:
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


def run_training(*, workdir: str, sink: Any = None, on_start: Callable | None = None) -> Any:
    """Calls the gin-configured :func:`capreolus_opt.training.train` (after :func:`parse_config`).

    Resumes from the latest checkpoint in ``workdir`` when there is one.
    """
    train = gin.get_configurable(f"{_MODULE}.train")
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

    arguments = dict(_signature_defaults(_training.train))
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
    try:
        gin.query_parameter(f"{_MODULE}.{param}")
    except ValueError:
        return False
    return True


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
            value = _macro_value(gin.query_parameter(f"{_MODULE}.AdamMultilr.{name}"))
        except ValueError:  # not bound: the signature default, which is valid
            continue
        if isinstance(value, gin.config.ConfigurableReference):
            continue  # e.g. a schedule, checked when it exists
        try:
            check(value, f"AdamMultilr.{name}")
        except (TypeError, ValueError) as err:
            raise GinConfigError(f"gin binding AdamMultilr.{name}: {err}") from None


def configured(param: str) -> Any:
    """Evaluates the binding ``param`` (e.g. ``"train.task"``) as gin would when calling.

    Evaluated references (``@RerankingTask()``) are called, uncalled references (``@AdamMultilr``)
    are returned as the configurable callable, macros are resolved.
    """
    return _resolve(gin.query_parameter(param))


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
    # gin 0.5 has no public way to enumerate bindings; _CONFIG is its {(scope, selector): {...}}.
    config: dict[tuple[str, str], dict[str, Any]] = gin.config._CONFIG
    flat: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    pending = [key for key in config if not key[1].startswith("gin.")]
    while pending:
        scope, selector = pending.pop()
        if (scope, selector) in seen:
            continue
        seen.add((scope, selector))
        configurable = gin.config._REGISTRY.get_match(selector)
        if configurable is None:
            continue
        prefix = (scope + "/" if scope else "") + _display(configurable.selector)
        values = dict(_signature_defaults(configurable.wrapped))
        values.update(config.get((scope, selector), {}))
        for param, value in values.items():
            for ref in _references(value):
                if not ref.configurable.selector.startswith("gin."):
                    pending.append(("/".join(ref.scopes), ref.configurable.selector))
            _flatten(f"{prefix}.{param}", value, flat)
    return sorted(flat.items())


def _display(selector: str) -> str:
    return selector.removeprefix(_MODULE + ".")


def _signature_defaults(fn: Callable) -> Iterable[tuple[str, Any]]:
    target = fn.__init__ if inspect.isclass(fn) else fn
    for name, param in inspect.signature(target).parameters.items():
        if name == "self" or name in _RUNTIME_ARGS:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is not inspect.Parameter.empty:
            yield name, param.default


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
