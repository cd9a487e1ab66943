"""AdamMultilr: Keras 3 Adam with regex learning-rate groups and a fused update kernel."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from capreolus_opt.optimizer import fused
from capreolus_opt.optimizer.group_api import GroupApiMixin, Resolution
from capreolus_opt.optimizer.groups import (
    LearningRateSchedule,
    check_lr,
    parse_pattern_lrs,
    resolve_groups,
    unmatched_messages,
    variable_path,
)


class _EagerSteps:
    """Internal tf.functions for eager `apply`, one per (variable list, None-gradient mask).

    A plain object so that neither Keras' nor TF's attribute tracking wraps the dict."""

    def __init__(self) -> None:
        self.functions: dict[tuple, Any] = {}


@keras.saving.register_keras_serializable(package="capreolus_opt")
class AdamMultilr(GroupApiMixin, keras.optimizers.Adam):
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
      p/m/v, weight decay folded in; ~0.55x the time of TF's kernels on 27M parameters), which
      g++ compiles against the installed TF on first use (~15 s, then cached per user). GPU
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
        if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
            # The groups' own check (Keras accepts a negative or NaN lr, and rejects ints, which
            # the seed accepted).
            learning_rate = check_lr(learning_rate, "learning_rate")
        specs = parse_pattern_lrs(pattern_lrs)  # validate before creating any variable
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
        self._eager_steps = _EagerSteps()
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
        self._momentums = [s[0] for s in slots]
        self._velocities = [s[1] for s in slots]
        if self.amsgrad:
            self._velocity_hats = [s[2] for s in slots]

    # ----------------------------------------------------------------- the step
    # Pure graph-building Python (no tensor-dependent control flow): AutoGraph has nothing to do.
    @tf.autograph.experimental.do_not_convert
    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        """Densify sparse gradients, then run Keras' `apply` (compiled once when eager)."""
        # Densify first: exact for duplicate indices, and `loss_scale_factor` cannot divide an
        # IndexedSlices (both stock Keras 3.15 bugs, DESIGN.md §3 (a), (b)).
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if not self._eager_compilable():
            if not self.built and trainable_variables is not None and self._in_replica_fn():
                self._build_from_replica(list(trainable_variables))
            return super().apply(grads, trainable_variables)
        variables = list(
            self._trainable_variables if trainable_variables is None else trainable_variables
        )
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(variables)
        key = (tuple(self._var_key(v) for v in variables), tuple(g is None for g in grads))
        step = self._eager_steps.functions.get(key)
        if step is None:
            mask = key[1]

            def step(present: list[tf.Tensor]) -> None:
                full = iter(present)
                keras.optimizers.Adam.apply(
                    self, [None if none else next(full) for none in mask], variables
                )

            step = tf.function(step, autograph=False)
            self._eager_steps.functions[key] = step
        step([g for g in grads if g is not None])

    def _eager_compilable(self) -> bool:
        # A plain callable lr may read Python state that a traced function would freeze.
        plain_callable = callable(self._learning_rate) and not isinstance(
            self._learning_rate, LearningRateSchedule | keras.Variable
        )
        # fused=False promises Keras' exact op-by-op arithmetic, so it also runs eagerly op by op
        # (grappler may reassociate `variable * wd * lr` inside a function: 1 ulp).
        return (
            self.fused
            and tf.executing_eagerly()
            and not tf.distribute.has_strategy()
            and not plain_callable
        )

    @staticmethod
    def _in_replica_fn() -> bool:
        """Tracing inside `strategy.run` of a non-default strategy."""
        return (
            tf.distribute.has_strategy()
            and not tf.distribute.in_cross_replica_context()
            and not tf.executing_eagerly()
        )

    def _build_from_replica(self, variables: list[Any]) -> None:
        """Build lazily from inside a replica function: in a merge call, lifted out of the graph.

        Stock Keras creates the slots inside the traced replica function and fails with "You must
        feed a value for placeholder" (DESIGN.md §3 (c)). Here the first `apply` under
        `strategy.run` builds in cross-replica context under `tf.init_scope()` (eagerly, as
        mirrored variables); this needs the trainable variables passed to `apply`.
        """

        def build(strategy: tf.distribute.Strategy, variables: list[Any]) -> None:
            with tf.init_scope(), strategy.scope(), keras.name_scope(self.name, caller=self):
                self.build(variables)

        tf.distribute.get_replica_context().merge_call(build, args=(variables,))

    def _clip_gradients(self, grads: list[Any]) -> list[Any]:
        # Clipping is applied in `_backend_update_step`, after the cross-replica sum.
        return grads

    def _apply_weight_decay(self, variables: list[Any]) -> None:
        # Weight decay is applied per variable in `_update_variable`, with its group's lr.
        return None

    def _step_learning_rates(self, base_lr: Any = None) -> list[Any]:
        """This step's lr per group (default last); schedules evaluated once, at `iterations`."""
        lrs = []
        for spec, variable in zip(self._group_specs, self._group_lr_variables, strict=True):
            if variable is not None:
                lrs.append(variable)
            elif spec.frozen:
                lrs.append(tf.constant(0.0, tf.float32))
            else:
                lrs.append(spec.lr(self._iterations))
        lrs.append(self.learning_rate if base_lr is None else base_lr)
        return lrs

    def _clip(self, grads: list[Any]) -> list[Any]:
        """Keras' clipping formulas, on the already all-reduced gradients."""
        if self.clipnorm and self.clipnorm > 0:
            return [tf.clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0 and grads:
            ops = keras.ops
            norm = ops.sqrt(ops.sum(ops.stack([ops.sum(ops.square(g)) for g in grads])))
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
            group = group_of[self._get_variable_index(variable)]
            if group < len(self._group_specs) and self._group_specs[group].frozen:
                continue  # frozen: no all-reduce, no clipping share, no update
            pairs.append(
                (grad, variable.value if isinstance(variable, keras.Variable) else variable)
            )
            groups.append(group)
        if not pairs:
            return
        pairs = self._all_reduce_sum_gradients(pairs)  # keeps the order
        clipped = self._clip([g for g, _ in pairs])
        # Variables stay variables: each update reads its lr itself, as in Keras (under XLA a
        # single shared read made 200 small updates ~10% slower).
        lrs = self._step_learning_rates(learning_rate)
        # Fused-kernel scalars (lr, beta powers, constants) once per (group, dtype) per step, so
        # that each variable costs one kernel (200 small variables: DESIGN.md §3).
        scalars: dict[tuple[int, tf.DType], tuple] = {}
        if self.fused and not fused.in_xla_context():
            local_step = self.iterations + 1
            for (grad, variable), group in zip(pairs, groups, strict=True):
                key = (group, tf.as_dtype(variable.dtype))
                if key not in scalars and fused.fusable(variable, grad):
                    scalars[key] = fused.step_scalars(
                        lrs[group], local_step, self.beta_1, self.beta_2, self.epsilon, key[1]
                    )
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_update,
            self._distribution_strategy,
            [(g, v, group) for g, (_, v), group in zip(clipped, pairs, groups, strict=True)],
            lrs,
            scalars,
        )

    def _distributed_update(
        self, distribution: Any, updates: list, lrs: list, scalars: dict
    ) -> None:
        for grad, variable, group in updates:
            distribution.extended.update(
                variable,
                self._update_variable,
                args=(grad, lrs[group], group, scalars.get((group, tf.as_dtype(variable.dtype)))),
                group=False,
            )

    def _update_variable(
        self, variable: Any, grad: Any, lr: Any, group: int, scalars: tuple | None
    ) -> Any:
        """Decoupled weight decay at the group's lr, then the Adam step (fused when possible)."""
        spec = self._group_specs[group] if group < len(self._group_specs) else None
        decay = (
            spec.weight_decay
            if spec is not None and spec.weight_decay is not None
            else self.weight_decay
        )
        decay = decay if decay and self._use_weight_decay(variable) else None
        if scalars is not None:  # the fused kernel applies the decay itself (no extra pass)
            index = self._get_variable_index(variable)
            v_hat = self._velocity_hats[index] if self.amsgrad else None
            m, v = self._momentums[index], self._velocities[index]
            return fused.fused_adam_update(variable, grad, m, v, v_hat, scalars, decay)
        if decay is not None:
            # Same expression as Keras' TF backend, so no-group runs stay bit-exact.
            lr_d = tf.cast(lr, variable.dtype)
            wd = tf.cast(decay, variable.dtype)
            variable.assign_sub(variable * wd * lr_d)
        return self.update_step(grad, variable, lr)

    # ----------------------------------------------------------------- serialisation
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["pattern_lrs"] = [spec.to_config() for spec in self._group_specs]
        config["strict"] = self.strict
        config["fused"] = self.fused
        for entry, variable in zip(config["pattern_lrs"], self._group_lr_variables, strict=True):
            if variable is not None:  # the current value, like Keras does for learning_rate
                entry["lr"] = float(keras.ops.convert_to_numpy(variable))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> AdamMultilr:
        # Group schedules are deserialised by parse_pattern_lrs (a dict with "class_name").
        return super().from_config(dict(config), custom_objects=custom_objects)
