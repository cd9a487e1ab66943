"""Resume across regrouping: optimizer state matched by variable path, not by position.

Keras 3 optimizers are checkpointed through their variable list, by position: iteration count,
learning rate, our group variables, then each trainable variable's slots. When `pattern_lrs`
changes between save and restore (a group frozen, thawed, added or renamed), positions shift and a
plain `tf.train.Checkpoint.restore` either fails on a shape or, worse, gives one variable another
variable's moments (PyTorch's optimizer restores by position in the same way; Keras' own
`.keras` loader skips mismatches with a warning).

AdamMultilr therefore writes its layout into every checkpoint (a JSON attribute of the optimizer
object: the key of each optimizer variable, e.g. ``momentum/encoder/layer_0/kernel`` or
``group_lr/encoder``, and each trainable variable's group). A plain restore whose layout differs
from the current one raises `RegroupError` (nothing is trained on misplaced state);
`restore_regrouped` then restores every variable's state by its key, reports what moved between
groups, what appeared (fresh state) and what vanished, and refuses by default when something
saved would be dropped (``allow_dropped=True`` accepts). Checkpoints written before the layout
existed restore as before.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import tensorflow as tf

from capreolus_opt.optimizer import keras_compat, tf_compat


class RegroupError(ValueError):
    """The checkpoint's optimizer layout differs from this optimizer's; the message says how."""


@dataclasses.dataclass(frozen=True)
class RegroupReport:
    """What a restore across regrouping did (keys like ``momentum/<variable path>``)."""

    moved: list[tuple[str, str, str]]  # (variable path, group then, group now)
    appeared: list[str]  # state this optimizer has and the checkpoint lacks: left fresh
    vanished: list[str]  # state the checkpoint has and this optimizer lacks: dropped
    restored: int  # optimizer variables restored by key

    def summary(self) -> str:
        parts = [f"{self.restored} optimizer variables restored by path"]
        if self.moved:
            moves = ", ".join(f"{p} ({a} -> {b})" for p, a, b in self.moved)
            parts.append(f"moved between groups: {moves}")
        if self.appeared:
            parts.append(f"new, starting fresh: {', '.join(self.appeared)}")
        if self.vanished:
            parts.append(f"in the checkpoint but not in this optimizer: {', '.join(self.vanished)}")
        return "; ".join(parts)


class LayoutMixin:
    """Writes the layout into checkpoints and refuses a plain restore across regrouping."""

    def _layout_keys(self, by_position: bool = False) -> dict[int, str]:
        """``id(optimizer variable) -> key``: per-variable state named by the variable's path, or
        (`by_position`) by its index in the var list, which is what a plain restore relies on."""
        keys = {id(keras_compat.step_counter(self)): "iterations"}
        learning_rate = keras_compat.raw_learning_rate(self)
        if hasattr(learning_rate, "assign"):
            keys[id(learning_rate)] = "learning_rate"
        for i, spec in enumerate(self._group_specs):
            for kind, variables in (
                ("group_lr", self._group_lr_variables),
                ("group_lr_mult", self._group_lr_mult_variables),
                ("group_wd_mult", self._group_wd_mult_variables),
                ("group_start_step", self._group_start_steps),
            ):
                if variables[i] is not None:
                    keys[id(variables[i])] = f"{kind}/{spec.name}"
        if self._resolution is not None:
            for kind, state in keras_compat.per_variable_state(self).items():
                for index, (path, variable) in enumerate(
                    zip(self._resolution.paths, state, strict=False)
                ):
                    if variable is not None:
                        keys[id(variable)] = f"{kind}/#{index}" if by_position else f"{kind}/{path}"
        return keys

    def layout(self) -> dict[str, Any]:
        """``{"variables": [key of each optimizer variable, in order], "positions": [the same,
        by var-list index], "groups": {path: group name}}``."""
        keys, positions = self._layout_keys(), self._layout_keys(by_position=True)
        variables = self.variables
        groups = {}
        if self._resolution is not None:
            names, resolution = self.group_names, self._resolution
            groups = {
                p: names[g] for p, g in zip(resolution.paths, resolution.group_of, strict=True)
            }
        return {
            "variables": [keys.get(id(v), f"other/{v.path}") for v in variables],
            "positions": [positions.get(id(v), f"other/#{j}") for j, v in enumerate(variables)],
            "groups": groups,
        }

    # The two checkpoint hooks of TF's Trackable (`tf_compat.CHECKPOINT_HOOKS`): the layout
    # travels as one string tensor of the optimizer object.
    def _serialize_to_tensors(self) -> dict[str, tf.Tensor]:
        with tf.init_scope():
            return {"layout": tf.constant(json.dumps(self.layout()))}

    def _restore_from_tensors(self, restored_tensors: dict[str, tf.Tensor]) -> tf.Operation:
        saved = json.loads(restored_tensors["layout"].numpy().decode())
        if self.built:
            self._check_layout(saved)
        else:  # deferred restoration: the slots do not exist yet; checked again in build()
            self._check_layout(saved, prefix_only=True)
            self._saved_layout.value = saved
        return tf.no_op()

    def _check_layout(self, saved: dict[str, Any], prefix_only: bool = False) -> None:
        # Paths may differ across model instances (`sequential_2/...`): what a plain restore
        # needs is the same state at the same positions.
        current = self.layout()
        now = current["positions"]
        head = saved["positions"][: len(now)] if prefix_only else saved["positions"]
        if head != now:
            report = compare_layouts(saved, current, restored=0)
            raise RegroupError(
                "The checkpoint was written with other optimizer groups (pattern_lrs changed?); a "
                "plain restore would misplace optimizer state. "
                f"{report.summary()}. Restore by variable path with "
                "capreolus_opt.optimizer.restore_regrouped(optimizer, checkpoint_path"
                + (", allow_dropped=True)" if report.vanished else ")")
            )


class SavedLayout:
    """A layout read before `build` (deferred restore); untracked, like `EagerSteps`."""

    value: dict[str, Any] | None = None


def compare_layouts(saved: dict[str, Any], current: dict[str, Any], restored: int) -> RegroupReport:
    old, new = set(saved["variables"]), set(current["variables"])
    moved = [
        (path, saved["groups"][path], group)
        for path, group in current["groups"].items()
        if path in saved["groups"] and saved["groups"][path] != group
    ]
    return RegroupReport(
        moved=moved,
        appeared=[k for k in current["variables"] if k not in old],
        vanished=[k for k in saved["variables"] if k not in new],
        restored=restored,
    )


def _saved_state(path: str, root: str) -> tuple[dict[str, Any], dict[str, str], Any]:
    """The saved layout, ``{layout key: checkpoint key}`` under `root`, and the reader."""
    reader = tf.train.load_checkpoint(path)
    graph = tf_compat.checkpoint_object_graph(reader)

    def child(node: int, name: str) -> int:
        for ref in graph.nodes[node].children:
            if ref.local_name == name:
                return ref.node_id
        raise RegroupError(f"checkpoint {path} has no {name!r} under {root!r}")

    node = child(0, root)
    attributes = {a.name: a.checkpoint_key for a in graph.nodes[node].attributes}
    if "layout" not in attributes:
        raise RegroupError(
            f"checkpoint {path} has no optimizer layout (written before AdamMultilr recorded "
            "one): restore it with tf.train.Checkpoint, with the groups it was written with"
        )
    layout = json.loads(reader.get_tensor(attributes["layout"]).decode())
    variables_node = graph.nodes[child(node, keras_compat.VARIABLES_CHILD)]
    listed = {ref.local_name: ref.node_id for ref in variables_node.children}
    keys = {}
    for index, key in enumerate(layout["variables"]):
        value = {a.name: a.checkpoint_key for a in graph.nodes[listed[str(index)]].attributes}
        keys[key] = value[tf_compat.VARIABLE_VALUE]
    return layout, keys, reader


def restore_regrouped(
    optimizer: Any, checkpoint_path: str, *, allow_dropped: bool = False, root: str = "optimizer"
) -> RegroupReport:
    """Restore `optimizer`'s state from a checkpoint written with other groups, by variable path.

    `optimizer` must be built (on the same model variables); restore the model's own weights with
    ``tf.train.Checkpoint(model=model).restore(path).expect_partial()``. `root` is the name the
    optimizer had in the saved ``tf.train.Checkpoint`` (``training`` uses ``"optimizer"``).

    Raises:
        RegroupError: saved state would be dropped (unless ``allow_dropped``), a saved value's
            shape differs, or the checkpoint has no layout. Nothing is assigned then.
    """
    if not optimizer.built:
        raise RegroupError("build the optimizer on the model's variables before restore_regrouped")
    saved, keys, reader = _saved_state(checkpoint_path, root)
    current = optimizer.layout()
    variables = dict(zip(current["variables"], optimizer.variables, strict=True))
    report = compare_layouts(saved, current, restored=len(set(keys) & set(variables)))
    if report.vanished and not allow_dropped:
        raise RegroupError(
            f"restoring {checkpoint_path} would drop saved optimizer state: {report.summary()}. "
            "Pass allow_dropped=True to accept."
        )
    values = {k: reader.get_tensor(keys[k]) for k in keys if k in variables}
    for key, value in values.items():
        if tuple(value.shape) != tuple(variables[key].shape):
            raise RegroupError(
                f"{key}: saved shape {tuple(value.shape)} != {tuple(variables[key].shape)} now "
                "(a different model?)"
            )
    for key, value in values.items():
        variables[key].assign(value)
    return report
