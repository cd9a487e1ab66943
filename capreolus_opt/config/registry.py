"""The one place that registers gin factories (the names gin files use).

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

import inspect
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

#: The gin module of our factories (``capreolus_opt.train``); gin files may leave it out.
MODULE = "capreolus_opt"


# --- optimizer -------------------------------------------------------------------------------
@gin.register("AdamMultilr", module=MODULE)
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
    ``tests/config/test_gin_config.py`` fails when the two drift apart.
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


@gin.register("lr_group", module=MODULE)
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
#: What the entry points pass to ``train`` at run time; not hyperparameters.
RUNTIME_ARGS = ("workdir", "sink", "on_start")
gin.register("make_strategy", module=MODULE)(_training.make_strategy)
gin.register("train", module=MODULE, denylist=RUNTIME_ARGS)(_training.train)
gin.register("RerankingTask", module=MODULE)(RerankingTask)
gin.register("SyntheticRankingData", module=MODULE)(SyntheticRankingData)
gin.register("TsvRankingData", module=MODULE)(TsvRankingData)
gin.register("TrecRerankingData", module=MODULE)(TrecRerankingData)
gin.register("bert_reranker_builder", module=MODULE)(bert_reranker_builder)
gin.register("bert_wordpiece_tokenizer", module=MODULE)(bert_wordpiece_tokenizer)
gin.register("dual_encoder_builder", module=MODULE)(dual_encoder_builder)
gin.register("layerwise_decay_pattern_lrs", module=MODULE)(layerwise_decay_pattern_lrs)


def display_name(selector: str) -> str:
    """``selector`` as a binding names it (our module prefix left out)."""
    return selector.removeprefix(MODULE + ".")


def signature_defaults(fn: Callable) -> Iterable[tuple[str, Any]]:
    """The parameters of ``fn`` (a class: its constructor) that have defaults, with them;
    :data:`RUNTIME_ARGS` and ``*args``/``**kwargs`` left out."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    for name, param in inspect.signature(target).parameters.items():
        if name == "self" or name in RUNTIME_ARGS:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is not inspect.Parameter.empty:
            yield name, param.default
