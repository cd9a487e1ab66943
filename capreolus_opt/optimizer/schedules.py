"""``LinearWarmupDecay``: linear warm-up to a peak, then linear decay, as one Keras schedule.

The fine-tuning schedule of BERT (Devlin et al. 2019) and of transformers'
``get_linear_schedule_with_warmup``; give it as ``AdamMultilr.learning_rate`` and every group
with an ``"lr_mult"`` follows it (one schedule, per-group multipliers).

    lr(s) = peak * (s + 1) / warmup_steps                            (s < warmup_steps)
    lr(s) = end + (peak - end) * (total_steps - s) / (total_steps - warmup_steps)
                                                           (warmup_steps <= s < total_steps)
    lr(s) = end                                                      (s >= total_steps)

``s`` is the optimizer's 0-based step count (Keras calls the schedule with the number of
updates applied before this one; with ``gradient_accumulation_steps`` it counts micro-steps, so
``total_steps`` is the training loop's ``num_steps`` either way).

Warning: transformers' warm-up is ``peak * s / warmup_steps``, whose first step has lr 0 (the
update only moves Adam's moments); here the first step already trains at ``peak / warmup_steps``.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="capreolus_opt")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """See the module docstring."""

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_steps: int = 0,
        end_learning_rate: float = 0.0,
        name: str = "LinearWarmupDecay",
    ) -> None:
        super().__init__()
        for label, value in (
            ("peak_learning_rate", peak_learning_rate),
            ("end_learning_rate", end_learning_rate),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{label} must be a number >= 0. Received: {value!r}")
        for label, value in (("total_steps", total_steps), ("warmup_steps", warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{label} must be an int >= 0. Received: {value!r}")
        if total_steps < 1 or warmup_steps >= total_steps:
            raise ValueError(
                f"need 0 <= warmup_steps < total_steps (total_steps >= 1). Received: "
                f"warmup_steps={warmup_steps!r}, total_steps={total_steps!r}"
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.end_learning_rate = float(end_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.name = name

    def __call__(self, step):
        s = ops.cast(step, "float32")
        peak, end = self.peak_learning_rate, self.end_learning_rate
        warmup = float(max(self.warmup_steps, 1))
        rising = peak * (s + 1.0) / warmup
        left = ops.clip((self.total_steps - s) / float(self.total_steps - self.warmup_steps), 0, 1)
        falling = end + (peak - end) * left
        return ops.where(s < self.warmup_steps, rising, falling)

    def get_config(self) -> dict:
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "end_learning_rate": self.end_learning_rate,
            "name": self.name,
        }
