"""An independent float64 NumPy Adam with regex learning-rate groups, the oracle for AdamMultilr.

It is written from the formulas, not from the code under test, in the Keras epsilon-hat form
(Kingma & Ba 2015, the variant at the end of section 2 that TF/Keras implement; optax warns that
it differs from Algorithm 1 because epsilon is added to sqrt(v) without bias correction of v):

    t      = number of applied updates so far + 1
    m     <- b1 * m + (1 - b1) * g
    v     <- b2 * v + (1 - b2) * g**2
    vhat  <- max(vhat, v)                        (amsgrad only; v is replaced by vhat below)
    alpha  = lr * sqrt(1 - b2**t) / (1 - b1**t)
    p     <- p - alpha * m / (sqrt(v) + eps)

Around that, in the order Keras 3 applies them:

1. gradient accumulation (``accumulation_steps=N``): micro-step gradients are summed and the
   update runs on every N-th call with their average; t counts updates, not calls;
2. clipping of the (averaged) gradients: ``clipnorm`` per variable
   (g * c / max(||g||, c)) or ``global_clipnorm`` over the non-frozen variables only;
3. decoupled weight decay, before the Adam update and scaled by the variable's group lr:
   p <- p - p * wd * lr;
4. the Adam update above with the group lr.

Groups: a group's rate is its ``lr``, or ``lr_mult`` times the base lr (a schedule is evaluated
first, then multiplied); its decay its ``weight_decay``, or ``wd_mult`` times the base one.
A group with ``unfreeze_at = N`` is skipped entirely (no update, no moment change, not in the
global clip norm) until N updates have been applied; then it counts its own Adam steps from 1
and its lr is scaled by ``min(1, own step / warmup)``.
A variable name is matched with ``re.search`` against each group's patterns in order;
the first group that matches wins; unmatched names use the base lr. A group whose lr is the
constant 0.0 is frozen: its variables never change and get no state. A group lr may be a
callable ``step -> float`` (a schedule), evaluated at the number of calls before this one (with
accumulation that counts micro-steps, as Keras does for its base lr: it calls the schedule with
the raw ``_iterations`` counter, while ``optimizer.iterations`` counts applied updates).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

LearningRate = float | Callable[[int], float]


@dataclass
class RefGroup:
    """One learning-rate group of the reference: patterns, lr and optional weight decay.

    ``lr_mult`` (instead of ``lr``) makes the group's rate ``lr_mult * base lr(step)``;
    ``wd_mult`` (instead of ``weight_decay``) makes its decay ``wd_mult * base weight_decay``.
    """

    patterns: Sequence[str]
    lr: LearningRate | None = None
    weight_decay: float | None = None
    lr_mult: float | None = None
    wd_mult: float | None = None
    # Scheduled unfreezing: the group trains from update number `unfreeze_at` (0-based) on,
    # counting its own steps from 1 then, with its lr ramped by min(1, own step / warmup).
    unfreeze_at: int | None = None
    warmup: int = 0

    @property
    def frozen(self) -> bool:
        return self.lr_mult is None and not callable(self.lr) and float(self.lr) == 0.0


@dataclass
class NumpyAdam:
    """Reference Adam over a dict of named float64 parameters (see the module docstring)."""

    params: dict[str, np.ndarray]
    learning_rate: LearningRate = 0.001
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    amsgrad: bool = False
    groups: Sequence[RefGroup] = ()
    weight_decay: float | None = None
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    accumulation_steps: int | None = None
    # Regexes searched in the leaf name (after the last "/"), like Keras'
    # exclude_from_weight_decay(var_names=...), which searches `variable.name`.
    exclude_from_weight_decay: Sequence[str] = ()
    calls: int = 0
    updates: int = 0
    m: dict[str, np.ndarray] = field(default_factory=dict)
    v: dict[str, np.ndarray] = field(default_factory=dict)
    vhat: dict[str, np.ndarray] = field(default_factory=dict)
    acc: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = {k: np.array(p, dtype=np.float64) for k, p in self.params.items()}
        default = RefGroup(patterns=(), lr=self.learning_rate, weight_decay=self.weight_decay)
        self.group_of: dict[str, RefGroup] = {}
        for name in self.params:
            self.group_of[name] = next(
                (g for g in self.groups if any(re.search(p, name) for p in g.patterns)), default
            )
        for name, p in self.params.items():
            self.acc[name] = np.zeros_like(p)
            if not self.group_of[name].frozen:
                self.m[name] = np.zeros_like(p)
                self.v[name] = np.zeros_like(p)
                self.vhat[name] = np.zeros_like(p)

    def lr_of(self, name: str, step: int) -> float:
        """The lr of ``name``'s group at optimizer step ``step`` (schedules are called)."""
        group = self.group_of[name]
        if group.lr_mult is not None:
            base = self.learning_rate
            return group.lr_mult * (float(base(step)) if callable(base) else float(base))
        lr = group.lr
        return float(lr(step)) if callable(lr) else float(lr)

    def step(self, grads: Mapping[str, np.ndarray]) -> None:
        """One optimizer call with dense gradients (float64 copies are taken)."""
        grads = {k: np.asarray(g, dtype=np.float64) for k, g in grads.items()}
        step_for_lr = self.calls
        self.calls += 1
        n = self.accumulation_steps
        if n:
            if self.calls % n != 0:
                for k, g in grads.items():
                    self.acc[k] = self.acc[k] + g
                return
            grads = {k: (g + self.acc[k]) / n for k, g in grads.items()}
            for k in self.acc:
                self.acc[k] = np.zeros_like(self.acc[k])
        done = self.updates  # updates applied before this one
        live = [k for k in grads if not self.group_of[k].frozen and self._trains(k, done)]
        grads = self._clip({k: grads[k] for k in live})
        self.updates += 1
        for k in live:
            group = self.group_of[k]
            t, lr = self.updates, self.lr_of(k, step_for_lr)
            if group.unfreeze_at is not None:
                t = done - group.unfreeze_at + 1
                if group.warmup:
                    lr = lr * min(1.0, t / group.warmup)
            self._update(k, grads[k], lr, t)

    def _trains(self, k: str, done: int) -> bool:
        start = self.group_of[k].unfreeze_at
        return start is None or done >= start

    def _clip(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.clipnorm:
            c = self.clipnorm
            return {k: g * c / max(np.linalg.norm(g), c) for k, g in grads.items()}
        if self.global_clipnorm:
            c = self.global_clipnorm
            norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
            return {k: g * c / max(norm, c) for k, g in grads.items()}
        return grads

    def _update(self, k: str, g: np.ndarray, lr: float, t: int) -> None:
        group = self.group_of[k]
        wd = group.weight_decay
        if wd is None:
            wd = self.weight_decay
        if group.wd_mult is not None and wd:
            wd = wd * group.wd_mult
        p = self.params[k]
        leaf = k.rsplit("/", 1)[-1]
        if wd and not any(re.search(x, leaf) for x in self.exclude_from_weight_decay):
            p = p - p * wd * lr
        b1, b2 = self.beta_1, self.beta_2
        self.m[k] = b1 * self.m[k] + (1 - b1) * g
        self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
        v = self.v[k]
        if self.amsgrad:
            self.vhat[k] = np.maximum(self.vhat[k], self.v[k])
            v = self.vhat[k]
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        self.params[k] = p - alpha * self.m[k] / (np.sqrt(v) + self.epsilon)


def dense_from_slices(values: np.ndarray, indices: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The dense gradient an IndexedSlices stands for: rows with repeated indices are summed."""
    dense = np.zeros(shape, dtype=np.float64)
    np.add.at(dense, np.asarray(indices), np.asarray(values, dtype=np.float64))
    return dense
