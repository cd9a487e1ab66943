"""`tf_compat`: the version check, every TensorFlow internal it uses exists in the installed TF
and still does what the project relies on, and no other module of the package touches one."""

from __future__ import annotations

import importlib
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt.framework_versions import UntestedVersionWarning, check_version, major_minor
from capreolus_opt.optimizer import keras_compat, tf_compat
from tests.optimizer.compat_scan import find_private_modules, find_private_uses, private_names

# Imports and attributes that reach TF's internals (`tensorflow.core` is where its protos live).
PRIVATE_MODULES = ("tensorflow.python", "tensorflow.core", "tensorflow.compiler", "tensorflow.tsl")


def _tf_private_names() -> set[str]:
    return private_names(
        tf.Variable(1.0),
        tf.constant(1.0),
        tf.Module,
        tf.distribute.get_strategy(),
        tf.train.Checkpoint(),
    )


def test_installed_tensorflow_is_a_tested_release() -> None:
    assert major_minor(tf.__version__) in tf_compat.TESTED


@pytest.mark.parametrize("version", ["2.20.0", "2.22.0rc0"])
def test_another_tf_2_release_warns_naming_it_and_the_tested_range(version: str) -> None:
    with pytest.warns(UntestedVersionWarning, match=rf"TensorFlow {version} .*\(2\.21\.x\)"):
        check_version("TensorFlow", version, tf_compat.TESTED)


def test_another_tf_major_version_is_an_import_error() -> None:
    with pytest.raises(ImportError, match=r"needs TensorFlow 2\.21\.x; TensorFlow 3\.0\.0 is"):
        check_version("TensorFlow", "3.0.0", tf_compat.TESTED)


def test_importing_the_module_checks_the_installed_version(monkeypatch) -> None:
    monkeypatch.setattr(tf, "__version__", "2.22.1")
    try:
        with pytest.warns(UntestedVersionWarning, match=r"TensorFlow 2\.22\.1"):
            importlib.reload(tf_compat)
    finally:
        monkeypatch.undo()
        importlib.reload(tf_compat)


def test_tfs_xla_probe_imports() -> None:
    # Without it `in_xla_context` answers True everywhere and the fused kernels go unused.
    assert tf_compat.GraphOrParentsInXlaContext is not None


def test_in_xla_context_tells_xla_tracing_from_plain_tracing() -> None:
    seen = []

    def probe() -> tf.Tensor:
        seen.append(tf_compat.in_xla_context())
        return tf.constant(0.0)

    assert tf_compat.in_xla_context() is False  # eager
    tf.function(probe)()
    tf.function(probe, jit_compile=True)()
    assert seen == [False, True]


def test_maybe_merge_call_runs_the_function_with_the_strategy() -> None:
    strategy = tf.distribute.get_strategy()
    calls = []

    def fn(distribution: tf.distribute.Strategy, a: int, b: int) -> int:
        calls.append(distribution)
        return a + b

    assert tf_compat.maybe_merge_call(fn, strategy, 2, 3) == 5
    assert calls == [strategy]
    # Inside a replica function of a real strategy it runs in cross-replica context.
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0"])
    contexts = []

    def cross(distribution: tf.distribute.Strategy) -> None:
        contexts.append((distribution is mirrored, tf.distribute.in_cross_replica_context()))

    mirrored.run(tf.function(lambda: tf_compat.maybe_merge_call(cross, mirrored)))
    assert contexts == [(True, True)]


@pytest.mark.parametrize("hook", sorted(tf_compat.CHECKPOINT_HOOKS))
def test_checkpoint_hooks_exist_with_the_signature_the_optimizer_overrides(hook: str) -> None:
    from capreolus_opt import AdamMultilr

    expected = tf_compat.CHECKPOINT_HOOKS[hook]
    for base in (tf.Module, keras.optimizers.Adam):
        method = getattr(base, hook, None)
        assert callable(method), f"{base.__name__}.{hook} is gone"
        params = tuple(p for p in inspect.signature(method).parameters if p != "self")
        assert params == expected
    assert getattr(AdamMultilr, hook) is not getattr(keras.optimizers.Adam, hook)


class _Tagged(tf.Module):
    """Saves one extra string tensor through the checkpoint hooks, as AdamMultilr's layout."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag, self.restored = tag, None

    def _serialize_to_tensors(self) -> dict[str, tf.Tensor]:
        return {"tag": tf.constant(self.tag)}

    def _restore_from_tensors(self, restored_tensors: dict[str, tf.Tensor]) -> tf.Operation:
        self.restored = restored_tensors["tag"].numpy().decode()
        return tf.no_op()


def test_a_checkpoint_saves_and_restores_through_the_hooks(tmp_path) -> None:
    path = tf.train.Checkpoint(obj=_Tagged("written")).write(str(tmp_path / "ckpt"))
    target = _Tagged("other")
    tf.train.Checkpoint(obj=target).read(path).assert_consumed()
    assert target.restored == "written"
    # The saved tensor is an attribute of the object's node in the object graph.
    graph = tf_compat.checkpoint_object_graph(tf.train.load_checkpoint(path))
    (node,) = [r.node_id for r in graph.nodes[0].children if r.local_name == "obj"]
    assert [a.name for a in graph.nodes[node].attributes] == ["tag"]


def test_checkpoint_object_graph_names_a_variables_value(tmp_path) -> None:
    path = tf.train.Checkpoint(v=tf.Variable([1.5, 2.5])).write(str(tmp_path / "ckpt"))
    reader = tf.train.load_checkpoint(path)
    graph = tf_compat.checkpoint_object_graph(reader)
    (node,) = [r.node_id for r in graph.nodes[0].children if r.local_name == "v"]
    (attribute,) = graph.nodes[node].attributes
    assert attribute.name == tf_compat.VARIABLE_VALUE
    assert np.array_equal(reader.get_tensor(attribute.checkpoint_key), [1.5, 2.5])


def test_no_tensorflow_internal_outside_the_compat_module() -> None:
    exempt = ("optimizer/tf_compat.py",)
    found = find_private_modules(PRIVATE_MODULES, ("__internal__",), exempt=exempt)
    hooks = set(tf_compat.CHECKPOINT_HOOKS) | set(keras_compat.OVERRIDDEN_HOOKS)
    found += find_private_uses(_tf_private_names(), hooks=hooks)
    assert found == []


def test_the_scan_finds_tensorflow_internals() -> None:
    found = find_private_modules(PRIVATE_MODULES, ("__internal__",), exempt=())
    assert any("optimizer/tf_compat.py" in f and "import tensorflow.python" in f for f in found)
    assert any("optimizer/tf_compat.py" in f and "__internal__" in f for f in found)
    assert {"_serialize_to_tensors", "_unique_id"} <= _tf_private_names()
