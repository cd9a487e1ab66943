"""AdamMultilr: Keras 3 Adam with regex learning-rate groups and a fused update kernel."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from capreolus_opt.optimizer import arguments, fused, keras_compat, tf_compat
from capreolus_opt.optimizer.apply import ApplyMixin, ClipDeferred, EagerSteps
from capreolus_opt.optimizer.group_api import GroupApiMixin, Resolution
from capreolus_opt.optimizer.groups import LearningRateSchedule, check_lr, parse_pattern_lrs
from capreolus_opt.optimizer.regroup import LayoutMixin, SavedLayout
from capreolus_opt.optimizer.resolve import resolve_groups, unmatched_messages, variable_path
from capreolus_opt.optimizer.unfreeze import NEVER, UnfreezeMixin


@keras.saving.register_keras_serializable(package="capreolus_opt")
class AdamMultilr(ApplyMixin, UnfreezeMixin, LayoutMixin, GroupApiMixin, keras.optimizers.Adam):
    """Adam with per-group learning rates chosen by regexes over variable paths.

    Every variable ``p`` with gradient ``g`` takes the Keras ("epsilon-hat") Adam step at its
    group's learning rate ``lr_g`` (t = iterations + 1)::

        m     <- m + (1 - beta_1) * (g - m)
        v     <- v + (1 - beta_2) * (g*g - v)          (amsgrad: v_hat <- max(v_hat, v))
        alpha  = lr_g * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        p     <- p - alpha * m / (sqrt(v) + epsilon)   (amsgrad: sqrt(v_hat))

    Warning: ``epsilon`` is the epsilon-hat of Kingma & Ba (2014, just before §2.1), as in Keras
    and TF, not the epsilon of Algorithm 1 (PyTorch / optax ``eps``): the two agree only as
    epsilon -> 0, and epsilon-hat = eps * sqrt(1 - beta_2**t) gives the same step.

    Groups (the seed's semantics). `pattern_lrs` is one of: a list of dicts
    ``{"patterns": regex or [regex, ...], "lr": float or LearningRateSchedule, "name": str,
    "weight_decay": float}`` ("name" and "weight_decay" optional); a ``{regex: lr}`` dict; a list of
    ``(regex, lr)`` pairs; or None/empty (exactly Keras Adam). When the optimizer is built, each
    variable's Keras ``path`` (a raw ``tf.Variable``: its name without ``:0``) is matched with
    ``re.search``; the first group in list order wins; unmatched variables form the group
    ``"default"`` (always last) at ``learning_rate``.

    - A group whose lr is the constant 0.0 is frozen: no moment slots, its variables never change
      (no weight decay either), and its gradients are left out of ``global_clipnorm``.
    - ``"lr_mult"`` instead of ``"lr"``: the group trains at ``learning_rate(step) * lr_mult``
      (one schedule drives every group); ``"wd_mult"`` instead of ``"weight_decay"``: its decay is
      ``weight_decay * wd_mult``. Both are variables (``set_group_lr_mult``/``set_group_wd_mult``).
    - ``"unfreeze_at": N | "manual"`` (+ ``"unfreeze_warmup": W``): frozen until step N or until
      ``unfreeze_group(name)``, then trained with its own Adam step count and a linear warm-up;
      see `capreolus_opt.optimizer.unfreeze` for the exact rule and the memory trade-off (its
      moments are allocated at build, frozen or not).
    - Float group lrs live in non-trainable variables: ``set_group_learning_rate`` changes them
      without a retrace, and checkpoints save them. Schedules are evaluated once per step at the
      optimizer's iteration count (as Keras does for ``learning_rate``).
    - Weight decay is decoupled and scaled by the variable's OWN group lr:
      ``p <- p - weight_decay_g * lr_g * p`` before the Adam step, where ``weight_decay_g`` is the
      group's ``"weight_decay"`` if given, else the base ``weight_decay``. (Stock Keras scales by
      the base lr; with no groups both are the same.) ``exclude_from_weight_decay`` applies to both.
    - Sparse gradients (``tf.IndexedSlices``) are densified first, so duplicate indices are summed
      exactly like the dense gradient (stock Keras 3.15 squares them one by one).
    - ``clipnorm`` / ``clipvalue`` / ``global_clipnorm`` act on the gradient summed over replicas,
      so a MirroredStrategy run equals a one-device run (stock Keras clips each replica's part).
    - Outside XLA, float32/float64 variables take one fused kernel per variable. On the CPU it
      is our one-pass op (`capreolus_opt.optimizer.kernel`: one read of p/g/m/v, one write of
      p/m/v, weight decay folded in; `benchmarks/optimizer_step.py` times it against TF's), which
      g++ compiles against the installed TF on first use (then cached per user). GPU
      variables, ``CAPREOLUS_OPT_ADAM_KERNEL=tf``, or a failed build or load (one warning) take
      TF's ``ResourceApplyAdam`` kernels; the two agree bit for bit (within 2 ulp with weight
      decay). Both round ``1 - beta`` in the variable's dtype where Keras rounds the Python
      float: after 20 float32 steps they differ from Keras by ~4e-7 of the parameters' scale
      (~1e-5 of the accumulated update), the fused ones being the closer to float64 maths.
      ``fused=False`` keeps Keras' op-by-op arithmetic. In eager mode the whole step runs in an
      internal ``tf.function`` traced once per variable list.
    - Under a ``tf.distribute`` strategy the optimizer may be built lazily by the first
      ``apply(grads, variables)`` inside ``strategy.run`` (it builds in a merge call, lifted out
      of the graph); stock Keras needs an explicit ``build`` inside ``strategy.scope()`` first.

    Example::

        opt = AdamMultilr(
            learning_rate=1e-3,
            pattern_lrs=[
                {"patterns": [r"^embedding/"], "lr": 0.0, "name": "embeddings"},
                {"patterns": [r"encoder/"], "lr": 2e-5, "name": "encoder", "weight_decay": 0.01},
            ],
        )
        model.compile(optimizer=opt, loss="mse")  # the head trains at 1e-3 in "default"
        opt.build(model.trainable_variables)
        print(opt.group_table().to_text())

    Args:
        learning_rate, beta_1, beta_2, epsilon, amsgrad: as `keras.optimizers.Adam`; ``lr`` is
            accepted as a legacy alias of ``learning_rate``.
        pattern_lrs: the groups, see above. Invalid input raises TypeError/ValueError naming the
            entry, e.g. ``pattern_lrs[1]['patterns'][0]``.
        strict: raise ValueError (instead of a UserWarning) at build time when a group or pattern
            matches no variable.
        fused: use the fused Adam kernels where possible (outside XLA, float32/float64). False
            forces the op-by-op `keras.ops` path (and no internal tf.function in eager mode):
            bit-for-bit `keras.optimizers.Adam` when there are no groups.
        **kwargs: every `keras.optimizers.Optimizer` argument (clipnorm, weight_decay, ...).
    """

    def __init__(
        self,
        learning_rate: float | LearningRateSchedule = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-07,
        amsgrad: bool = False,
        name: str = "AdamMultilr",
        pattern_lrs: Any = None,
        strict: bool = False,
        fused: bool = True,
        **kwargs: Any,
    ) -> None:
        if "lr" in kwargs:
            legacy = kwargs.pop("lr")
            if learning_rate != 0.001:
                raise ValueError(
                    f"Pass either learning_rate or its legacy alias lr, not both. Received: "
                    f"learning_rate={learning_rate!r}, lr={legacy!r}"
                )
            learning_rate = legacy
        if isinstance(learning_rate, numbers.Real | LearningRateSchedule) and not isinstance(
            learning_rate, bool
        ):
            # The groups' own check (Keras accepts a negative or NaN lr, and rejects ints, which
            # the seed accepted); a schedule is checked at step 0.
            learning_rate = check_lr(learning_rate, "learning_rate")
        # Validate everything before creating any variable.
        kwargs["weight_decay"] = arguments.check_weight_decay(kwargs.get("weight_decay"))
        beta_1 = arguments.check_beta(beta_1, "beta_1")
        beta_2 = arguments.check_beta(beta_2, "beta_2")
        epsilon = arguments.check_epsilon(epsilon)
        strict = arguments.check_bool(strict, "strict")
        fused = arguments.check_bool(fused, "fused")
        specs = parse_pattern_lrs(pattern_lrs)
        for i, spec in enumerate(specs):
            if spec.wd_mult is not None and not kwargs["weight_decay"]:
                raise ValueError(
                    f"pattern_lrs[{i}]['wd_mult'] (group {spec.name!r}) multiplies the base "
                    f"weight_decay, which is {kwargs['weight_decay']!r}: set weight_decay, or give "
                    "the group an absolute 'weight_decay'."
                )
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            name=name,
            **kwargs,
        )
        self._group_specs = tuple(specs)
        self.strict = bool(strict)
        self.fused = bool(fused)
        self._resolution: Resolution | None = None
        self._eager_steps = EagerSteps()
        self._clip_deferred = ClipDeferred()
        self._saved_layout = SavedLayout()
        # Float, non-frozen group lrs: variables created now (before build) so a checkpoint can
        # restore them at any time; "only_first_replica" like Keras' own learning_rate variable.
        self._group_lr_variables = [
            self.add_variable(
                shape=(),
                initializer=keras.initializers.Constant(spec.lr),
                dtype="float32",
                aggregation="only_first_replica",
                name=f"group_lr_{i}",
            )
            if isinstance(spec.lr, float) and not spec.frozen
            else None
            for i, spec in enumerate(specs)
        ]
        # Multipliers, likewise variables: changed without a retrace, saved in checkpoints.
        self._group_lr_mult_variables = [
            self._multiplier_variable(spec.lr_mult, f"group_lr_mult_{i}")
            for i, spec in enumerate(specs)
        ]
        self._group_wd_mult_variables = [
            self._multiplier_variable(spec.wd_mult, f"group_wd_mult_{i}")
            for i, spec in enumerate(specs)
        ]
        self._group_start_steps = self._start_step_variables()

    def _multiplier_variable(self, value: float | None, name: str) -> Any:
        if value is None:
            return None
        return self.add_variable(
            shape=(),
            initializer=keras.initializers.Constant(value),
            dtype="float32",
            aggregation="only_first_replica",
            name=name,
        )

    # ----------------------------------------------------------------- build
    def build(self, var_list: Sequence[Any]) -> None:
        """Resolve groups (once), warn or raise for dead patterns, then create the slots."""
        if self.built:
            return
        var_list = list(var_list)
        paths = [variable_path(v) for v in var_list]
        groups = resolve_groups(self._group_specs, paths)
        messages = unmatched_messages(self._group_specs, paths, groups)
        if messages and self.strict:
            raise ValueError("strict=True: " + " ".join(messages))
        for message in messages:
            warnings.warn(message, UserWarning, stacklevel=2)
        frozen = [g < len(self._group_specs) and self._group_specs[g].frozen for g, _ in groups]
        # Base build: indices, EMA averages, gradient accumulators (not Adam's slots).
        keras.optimizers.Optimizer.build(self, var_list)
        self._resolution = Resolution(paths, groups)
        active = [v for v, f in zip(var_list, frozen, strict=True) if not f]
        slot_names = ["momentum", "velocity"] + (["velocity_hat"] if self.amsgrad else [])
        created = iter(zip(*self.add_optimizer_variables(active, slot_names), strict=True))
        slots = [(None,) * len(slot_names) if f else next(created) for f in frozen]
        keras_compat.set_adam_slots(
            self, {name: [s[k] for s in slots] for k, name in enumerate(slot_names)}
        )
        saved, self._saved_layout.value = self._saved_layout.value, None
        if saved is not None:  # restored before build: refuse state written for other groups
            self._check_layout(saved)

    # ----------------------------------------------------------------- the step
    def _apply_weight_decay(self, variables: list[Any]) -> None:
        # Weight decay is applied per variable in `_update_variable`, with its group's lr.
        return None

    # Graph-building Python only: AutoGraph (when a user's tf.function calls
    # group_learning_rates) would turn this loop into a tf.while and lose the list.
    @tf.autograph.experimental.do_not_convert
    def _step_learning_rates(self, base_lr: Any = None) -> list[Any]:
        """This step's lr per group (default last); schedules evaluated once, at `iterations`."""
        base = self.learning_rate if base_lr is None else base_lr
        step = keras_compat.step_counter(self)
        if isinstance(keras_compat.raw_learning_rate(self), LearningRateSchedule):
            base = checked_rate(base, "learning_rate", step)
        lrs = []
        for spec, variable, mult in zip(
            self._group_specs, self._group_lr_variables, self._group_lr_mult_variables, strict=True
        ):
            if variable is not None:
                lrs.append(variable)
            elif mult is not None:
                lrs.append(tf.cast(base, tf.float32) * mult)
            elif spec.frozen:
                lrs.append(tf.constant(0.0, tf.float32))
            else:
                lrs.append(checked_rate(spec.lr(step), spec.name, step))
            clock = self._group_clock(len(lrs) - 1)
            if clock is not None:  # 0 while frozen, then the warm-up ramp
                lrs[-1] = tf.cast(lrs[-1], tf.float32) * self._clock_factor(len(lrs) - 1, clock)
        lrs.append(base)
        return lrs

    def _clip(self, grads: list[Any], active: list[Any]) -> list[Any]:
        """Keras' clipping formulas, on the already all-reduced gradients.

        `active[i]` is None, or a bool tensor that is False while the gradient's group is still
        frozen (scheduled unfreezing): its share is then left out of the global norm.
        """
        if self.clipnorm and self.clipnorm > 0:
            return [tf.clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0 and grads:
            ops = keras.ops
            squares = [ops.sum(ops.square(g)) for g in grads]
            squares = [
                s if a is None else tf.where(a, s, tf.zeros_like(s))
                for s, a in zip(squares, active, strict=True)
            ]
            norm = ops.sqrt(ops.sum(ops.stack(squares)))
            scale = self.global_clipnorm * ops.minimum(1.0 / norm, 1.0 / self.global_clipnorm)
            scale = scale + (norm - norm)  # NaN/inf norm -> NaN gradients, as Keras does
            return [g * scale for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            return [keras.ops.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _backend_update_step(
        self, grads: list[Any], trainable_variables: list[Any], learning_rate: Any
    ) -> None:
        # Each variable's group, looked up once per trace and carried through the update.
        group_of = self._built_resolution().group_of
        pairs, groups = [], []
        for grad, variable in zip(grads, trainable_variables, strict=True):
            group = group_of[keras_compat.variable_index(self, variable)]
            if group < len(self._group_specs) and self._group_specs[group].frozen:
                continue  # frozen: no all-reduce, no clipping share, no update
            pairs.append(
                (grad, variable.value if isinstance(variable, keras.Variable) else variable)
            )
            groups.append(group)
        if not pairs:
            return
        pairs = keras_compat.all_reduce_sum_gradients(self, pairs)  # keeps the order
        clocks = {g: self._group_clock(g) for g in set(groups)}
        clipped = self._clip(
            [g for g, _ in pairs], [None if clocks[g] is None else clocks[g][0] for g in groups]
        )
        # Variables stay variables: each update reads its lr itself, as in Keras (under XLA a
        # single shared read made 200 small updates ~10% slower).
        lrs = self._step_learning_rates(learning_rate)
        # Fused-kernel scalars (lr, beta powers, constants) once per (group, dtype) per step, so
        # that each variable costs one kernel (200 small variables: docs/STACK_FACTS.md §3).
        scalars: dict[tuple[int, tf.DType], tuple] = {}
        if self.fused and not tf_compat.in_xla_context():
            global_step = self.iterations + 1
            for (grad, variable), group in zip(pairs, groups, strict=True):
                key = (group, tf.as_dtype(variable.dtype))
                local_step = global_step if clocks[group] is None else clocks[group][1]
                if key not in scalars and fused.fusable(variable, grad):
                    scalars[key] = fused.step_scalars(
                        lrs[group], local_step, self.beta_1, self.beta_2, self.epsilon, key[1]
                    )
        tf_compat.maybe_merge_call(
            self._distributed_update,
            keras_compat.distribution_strategy(self),
            [(g, v, group) for g, (_, v), group in zip(clipped, pairs, groups, strict=True)],
            lrs,
            scalars,
            clocks,
        )

    def _distributed_update(
        self, distribution: Any, updates: list, lrs: list, scalars: dict, clocks: dict
    ) -> None:
        for grad, variable, group in updates:
            key = (group, tf.as_dtype(variable.dtype))
            distribution.extended.update(
                variable,
                self._update_variable,
                args=(grad, lrs[group], group, scalars.get(key), clocks[group]),
                group=False,
            )

    def _update_variable(
        self, variable: Any, grad: Any, lr: Any, group: int, scalars: tuple | None, clock: Any
    ) -> Any:
        """The update, or (scheduled group, still frozen) nothing at all: params and moments."""
        if clock is None:
            return self._decay_and_step(variable, grad, lr, group, scalars, None)

        def train() -> None:
            self._decay_and_step(variable, grad, lr, group, scalars, clock[1])

        return tf.cond(clock[0], train, lambda: None)

    def _decay_and_step(
        self, variable: Any, grad: Any, lr: Any, group: int, scalars: tuple | None, step: Any
    ) -> Any:
        """Decoupled weight decay at the group's lr, then the Adam step (fused when possible)."""
        spec = self._group_specs[group] if group < len(self._group_specs) else None
        decay = (
            spec.weight_decay
            if spec is not None and spec.weight_decay is not None
            else self.weight_decay
        )
        decay = decay if decay and keras_compat.uses_weight_decay(self, variable) else None
        if decay is not None and spec is not None and spec.wd_mult is not None:
            decay = tf.cast(decay, variable.dtype) * tf.cast(
                self._group_wd_mult_variables[group], variable.dtype
            )
        if scalars is not None:  # the fused kernel applies the decay itself (no extra pass)
            index = keras_compat.variable_index(self, variable)
            m, v = (keras_compat.adam_slot(self, k, index) for k in ("momentum", "velocity"))
            v_hat = keras_compat.adam_slot(self, "velocity_hat", index) if self.amsgrad else None
            return fused.fused_adam_update(variable, grad, m, v, v_hat, scalars, decay)
        if decay is not None:
            # Same expression as Keras' TF backend, so no-group runs stay bit-exact.
            lr_d = tf.cast(lr, variable.dtype)
            wd = tf.cast(decay, variable.dtype)
            variable.assign_sub(variable * wd * lr_d)
        if step is not None:  # a scheduled group counts its own steps
            return self._update_step_at(grad, variable, lr, step)
        return self.update_step(grad, variable, lr)

    # ----------------------------------------------------------------- serialisation
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["pattern_lrs"] = [spec.to_config() for spec in self._group_specs]
        config["strict"] = self.strict
        config["fused"] = self.fused
        current = zip(
            config["pattern_lrs"],
            self._group_lr_variables,
            self._group_lr_mult_variables,
            self._group_wd_mult_variables,
            strict=True,
        )
        for entry, lr, lr_mult, wd_mult in current:  # current values, as Keras does for its lr
            for key, variable in (("lr", lr), ("lr_mult", lr_mult), ("wd_mult", wd_mult)):
                if variable is not None:
                    entry[key] = float(keras.ops.convert_to_numpy(variable))
        for entry, start in zip(config["pattern_lrs"], self._group_start_steps, strict=True):
            if start is not None and int(keras.ops.convert_to_numpy(start)) < NEVER:
                entry["unfreeze_at"] = int(keras.ops.convert_to_numpy(start))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> AdamMultilr:
        # Group schedules are deserialised by parse_pattern_lrs (a dict with "class_name").
        return super().from_config(dict(config), custom_objects=custom_objects)


def checked_rate(value: Any, where: str, step: Any) -> Any:
    """A schedule's rate for this step, asserted finite and >= 0 where it is evaluated: a
    negative rate would train by gradient ascent without a sign. (Under XLA the assertion is
    compiled away; runs validate their schedules over every step range before they start.)"""
    value = tf.cast(value, tf.float32)
    ok = tf.logical_and(tf.math.is_finite(value), value >= 0.0)
    message = f"{where}: a learning-rate schedule must give a finite rate >= 0; at step"
    check = tf.debugging.Assert(ok, [message, step, "it gives", value])
    with tf.control_dependencies([check] if check is not None else []):
        return tf.identity(value)
