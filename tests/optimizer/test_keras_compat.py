"""`keras_compat`: the version check; every private Keras name it uses exists in the installed
Keras (overridden hooks with AdamMultilr's signatures); no other module of the package uses one."""

from __future__ import annotations

import importlib
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from capreolus_opt.framework_versions import UntestedVersionWarning, check_version, major_minor
from capreolus_opt.optimizer import keras_compat, tf_compat
from tests.optimizer.compat_scan import find_private_modules, find_private_uses, private_names


def _full_adam() -> keras.optimizers.Adam:
    """A built Keras Adam with every optional piece of per-variable state switched on."""
    opt = keras.optimizers.Adam(amsgrad=True, use_ema=True, gradient_accumulation_steps=2)
    opt.build([keras.Variable(np.ones((2, 3), "float32"), name="kernel")])
    return opt


def _keras_private_names() -> set[str]:
    return private_names(
        _full_adam(), keras.optimizers.Optimizer, keras.Variable(np.zeros(1, "float32"))
    )


def _parameters(function: object) -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(function).parameters if p != "self")


def test_installed_keras_is_a_tested_release() -> None:
    assert major_minor(keras.__version__) in keras_compat.TESTED


@pytest.mark.parametrize("version", ["3.14.0", "3.16.0", "3.16.0.dev2027", "nightly"])
def test_another_keras_3_release_warns_once_naming_it_and_the_tested_range(version: str) -> None:
    with pytest.warns(UntestedVersionWarning) as caught:
        check_version("Keras", version, keras_compat.TESTED)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"Keras {version} is outside" in message and "(3.15.x)" in message


@pytest.mark.parametrize("version", ["2.15.0", "4.0.0"])
def test_another_keras_major_version_is_an_import_error(version: str) -> None:
    with pytest.raises(ImportError, match=rf"needs Keras 3\.15\.x; Keras {version} is installed"):
        check_version("Keras", version, keras_compat.TESTED)


def test_tested_patch_releases_pass_silently() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_version("Keras", "3.15.0", keras_compat.TESTED)
        check_version("Keras", "3.15.9rc1", keras_compat.TESTED)


def test_importing_the_module_checks_the_installed_version(monkeypatch) -> None:
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    try:
        with pytest.warns(UntestedVersionWarning, match=r"Keras 3\.99\.0"):
            importlib.reload(keras_compat)
        monkeypatch.setattr(keras, "__version__", "4.0.0")
        with pytest.raises(ImportError, match=r"Keras 4\.0\.0"):
            importlib.reload(keras_compat)
    finally:
        monkeypatch.undo()
        importlib.reload(keras_compat)


def test_every_private_attribute_exists_on_a_keras_optimizer() -> None:
    opt = _full_adam()
    missing = [name for name in keras_compat.PRIVATE_ATTRIBUTES if not hasattr(opt, name)]
    assert missing == []


@pytest.mark.parametrize("hook", sorted(keras_compat.OVERRIDDEN_HOOKS))
def test_overridden_hooks_exist_with_the_signature_adam_multilr_overrides(hook: str) -> None:
    expected = keras_compat.OVERRIDDEN_HOOKS[hook]
    for base in (keras.optimizers.Optimizer, keras.optimizers.Adam):
        assert callable(getattr(base, hook, None)), f"{base.__name__}.{hook} is gone"
        assert _parameters(getattr(base, hook)) == expected
    assert _parameters(getattr(AdamMultilr, hook)) == expected
    # The override is ours, not inherited: the list names what AdamMultilr really overrides.
    assert getattr(AdamMultilr, hook) is not getattr(keras.optimizers.Adam, hook)


def test_accessors_return_the_optimizers_state() -> None:
    kernel = keras.Variable(np.ones((2, 3), "float32"), name="kernel")
    bias = keras.Variable(np.zeros(3, "float32"), name="bias")
    opt = keras.optimizers.Adam(learning_rate=0.01, weight_decay=0.1, amsgrad=True)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.build([kernel, bias])

    assert keras_compat.built_variables(opt) == [kernel, bias]
    assert keras_compat.variable_index(opt, bias) == 1
    assert keras_compat.variable_index(opt, bias.value) == 1  # the raw tf.Variable too
    assert keras_compat.var_key(opt, kernel) == keras_compat.var_key(opt, kernel.value)
    assert keras_compat.var_key(opt, kernel) != keras_compat.var_key(opt, bias)
    assert keras_compat.step_counter(opt) is opt.iterations
    assert keras_compat.raw_learning_rate(opt) is opt.variables[1]
    assert keras_compat.uses_weight_decay(opt, kernel)
    assert not keras_compat.uses_weight_decay(opt, bias)
    assert keras_compat.distribution_strategy(opt) is tf.distribute.get_strategy()
    pairs = [(tf.ones((2, 3)), kernel.value)]
    (summed, variable), *_ = keras_compat.all_reduce_sum_gradients(opt, pairs)
    assert variable is kernel.value and np.array_equal(summed, np.ones((2, 3)))

    state = keras_compat.per_variable_state(opt)
    assert list(state) == ["momentum", "velocity", "velocity_hat"]
    assert keras_compat.adam_slot(opt, "velocity", 1) is state["velocity"][1]
    assert keras_compat.adam_slot(opt, "momentum", 0).shape == (2, 3)
    keras_compat.set_adam_slots(opt, {"momentum": [None, state["momentum"][1]]})
    assert keras_compat.adam_slot(opt, "momentum", 0) is None


def test_per_variable_state_lists_ema_averages_and_gradient_accumulators() -> None:
    assert list(keras_compat.per_variable_state(_full_adam())) == [
        "momentum",
        "velocity",
        "velocity_hat",
        "average",
        "accum",
    ]


def test_raw_learning_rate_and_step_counter_under_accumulation_and_schedules() -> None:
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    opt = keras.optimizers.Adam(learning_rate=schedule, gradient_accumulation_steps=2)
    opt.build([keras.Variable(np.ones(2, "float32"))])
    assert keras_compat.raw_learning_rate(opt) is schedule
    # The micro-step counter variable: public `iterations` is a tensor derived from it.
    assert keras_compat.step_counter(opt) is opt.variables[0]


def test_the_optimizer_variable_list_is_the_checkpoint_child_named_variables_child(
    tmp_path,
) -> None:
    opt = _full_adam()
    path = tf.train.Checkpoint(optimizer=opt).write(str(tmp_path / "ckpt"))
    reader = tf.train.load_checkpoint(path)
    graph = tf_compat.checkpoint_object_graph(reader)
    (optimizer_node,) = [r.node_id for r in graph.nodes[0].children if r.local_name == "optimizer"]
    (listed,) = [
        r.node_id
        for r in graph.nodes[optimizer_node].children
        if r.local_name == keras_compat.VARIABLES_CHILD
    ]
    children = {r.local_name: r.node_id for r in graph.nodes[listed].children}
    assert sorted(children, key=int) == [str(i) for i in range(len(opt.variables))]
    for index, variable in enumerate(opt.variables):
        node = graph.nodes[children[str(index)]]
        attributes = {a.name: a.checkpoint_key for a in node.attributes}
        saved = reader.get_tensor(attributes[tf_compat.VARIABLE_VALUE])
        assert np.array_equal(saved, keras.ops.convert_to_numpy(variable))


def test_no_private_keras_name_outside_the_compat_module() -> None:
    hooks = set(keras_compat.OVERRIDDEN_HOOKS) | set(tf_compat.CHECKPOINT_HOOKS)
    assert find_private_uses(_keras_private_names(), hooks=hooks) == []
    exempt = ("optimizer/keras_compat.py",)
    assert find_private_modules(("keras.src",), (), exempt=exempt) == []


def test_the_scan_finds_a_private_keras_name() -> None:
    # The scan above is only worth something if it sees the names it looks for.
    names = _keras_private_names()
    assert {"_var_key", "_iterations", "_momentums", "_backend_update_step"} <= names
    found = find_private_uses(names, hooks=(), exempt=())
    assert any("optimizer/keras_compat.py" in f and "_var_key" in f for f in found)
    assert any("optimizer/adam_multilr.py" in f and "_backend_update_step" in f for f in found)
