"""Value rules: the range or the choices each parameter of our factories accepts.

A rule applies to the parameter of that name in every registered factory whose signature has it
(the annotation gives the type, checked first by :mod:`capreolus_opt.config.typecheck`; the rule
gives the range). Values a constructor checks itself when built (the task, its data) are also
refused here, when the config is parsed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from capreolus_opt.training.precision import AUTO, POLICIES
from capreolus_opt.training.strategy import KINDS


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


#: The rule of each parameter name (see the module docstring).
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
