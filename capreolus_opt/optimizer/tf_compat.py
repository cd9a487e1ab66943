"""Every TensorFlow internal the project relies on, in one place (TensorFlow 2.21).

- `maybe_merge_call`: ``tf.__internal__.distribute.interim.maybe_merge_call``, the call Keras'
  TF backend makes around its per-variable updates (a merge call under a strategy that needs one,
  a plain call otherwise); AdamMultilr's `_backend_update_step` makes the same call.
- `in_xla_context`: whether the graph being traced will be compiled by XLA. TF has no public
  answer; ``tensorflow.python.ops.control_flow_util.GraphOrParentsInXlaContext`` is the one its
  own code uses.
- `CHECKPOINT_HOOKS`: the `Trackable` methods through which an object saves extra tensors in a
  `tf.train.Checkpoint` (AdamMultilr saves its group layout there, `optimizer/regroup.py`).
- `checkpoint_object_graph`: the object graph stored in a checkpoint (its proto lives under
  ``tensorflow.core``; `tf.train.CheckpointView` does not expose the attributes' keys).

Outside this module no code of `capreolus_opt` imports ``tensorflow.python``/``tensorflow.core``
or touches ``tf.__internal__`` (``tests/optimizer/test_tf_compat.py`` scans the package).
Importing it checks ``tf.__version__`` against `TESTED` (`check_version`: another major version
raises ImportError, another 2.x minor release warns once). It lives in `optimizer/`, the lowest
library layer, so that every layer may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from capreolus_opt.framework_versions import check_version

try:
    from tensorflow.python.ops.control_flow_util import GraphOrParentsInXlaContext
except ImportError:  # pragma: no cover - a TF release outside TESTED (which warned already)
    GraphOrParentsInXlaContext = None

# (major, minor) releases this module's names were checked on (pyproject pins 2.21.*).
TESTED: tuple[tuple[int, int], ...] = ((2, 21),)

check_version("TensorFlow", tf.__version__, TESTED)

# Trackable methods overridden to save and restore extra tensors in a checkpoint, with their
# parameters after `self`. The test checks they still exist on `tf.Module` with these parameters.
CHECKPOINT_HOOKS: dict[str, tuple[str, ...]] = {
    "_serialize_to_tensors": (),
    "_restore_from_tensors": ("restored_tensors",),
}

# The checkpoint key under which TF stores the object graph proto, and the attribute name of a
# variable's value in that graph.
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
VARIABLE_VALUE = "VARIABLE_VALUE"


def maybe_merge_call(fn: Callable[..., Any], strategy: Any, *args: Any) -> Any:
    """``fn(distribution, *args)`` in cross-replica context (a merge call when one is needed)."""
    return tf.__internal__.distribute.interim.maybe_merge_call(fn, strategy, *args)


def in_xla_context() -> bool:
    """True while tracing a function that XLA will compile (`jit_compile=True`, TPU).

    Without TF's probe (a release outside `TESTED`) this answers True: the caller then keeps to
    ops every compiler accepts.
    """
    if tf.executing_eagerly():
        return False
    if GraphOrParentsInXlaContext is None:
        return True
    return bool(GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def checkpoint_object_graph(reader: Any) -> Any:
    """The `TrackableObjectGraph` proto of a checkpoint (`reader`: `tf.train.load_checkpoint`).

    Node 0 is the root; ``node.children`` are ``(local_name, node_id)`` references and
    ``node.attributes`` ``(name, checkpoint_key)`` pairs (a variable: name `VARIABLE_VALUE`).
    """
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    return graph
