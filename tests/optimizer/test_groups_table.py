"""Group resolution reporting: group_table (rows/text/csv/records/totals), group accessors,
the unmatched-pattern warning and strict mode, run-time lr changes without retracing."""

from __future__ import annotations

import csv
import io
import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from capreolus_opt import AdamMultilr
from tests.optimizer.helpers import (
    SHAPES,
    assert_rel_close,
    initial_values,
    make_variables,
    random_grads,
)
from tests.optimizer.numpy_adam import NumpyAdam, RefGroup

LAYOUT = [
    {"patterns": ["encoder/layer_0"], "lr": 0.003, "name": "low"},
    {"patterns": ["encoder", r"head/kernel$"], "lr": 0.04, "name": "high"},
    {"patterns": ["embedding"], "lr": 0.0, "name": "frozen"},
]
# Written by hand from LAYOUT: (group, pattern that matched, lr); head/bias is unmatched.
EXPECTED = {
    "embedding/embeddings": ("frozen", "embedding", 0.0),
    "encoder/layer_0/kernel": ("low", "encoder/layer_0", 0.003),
    "encoder/layer_0/bias": ("low", "encoder/layer_0", 0.003),
    "encoder/layer_1/kernel": ("high", "encoder", 0.04),
    "head/kernel": ("high", r"head/kernel$", 0.04),
    "head/bias": ("default", None, 0.01),
}


def built(pattern_lrs=LAYOUT, seed=0, **kwargs):
    opt = AdamMultilr(learning_rate=0.01, pattern_lrs=pattern_lrs, **kwargs)
    variables = make_variables(initial_values(seed))
    opt.build(variables)
    return opt, variables


def test_group_table_rows():
    opt, _ = built()
    table = opt.group_table()
    assert [r.variable for r in table.rows] == list(SHAPES)
    for row in table.rows:
        group, pattern, lr = EXPECTED[row.variable]
        assert (row.group, row.pattern) == (group, pattern), row
        assert row.lr == pytest.approx(lr, rel=1e-7)
        assert tuple(row.shape) == SHAPES[row.variable]
        assert row.params == int(np.prod(SHAPES[row.variable]))
    assert opt.group_names == ["low", "high", "frozen", "default"]
    assert table.totals() == {
        "low": (2, 3 * 4 + 4),
        "high": (2, 4 * 4 + 4 * 2),
        "frozen": (1, 6 * 3),
        "default": (1, 2),
    }


def test_group_table_text_csv_records():
    opt, _ = built()
    table = opt.group_table()
    text = table.to_text()
    for path, (group, pattern, _) in EXPECTED.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(path))
        assert group in line and (pattern or "") in line, line
    assert "18" in next(ln for ln in text.splitlines() if "frozen" in ln and "tensors" in ln)
    rows = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert [r["variable"] for r in rows] == list(SHAPES)
    assert [r["group"] for r in rows] == [EXPECTED[p][0] for p in SHAPES]
    assert [int(r["params"]) for r in rows] == [int(np.prod(s)) for s in SHAPES.values()]
    records = json.loads(json.dumps(table.to_records()))
    assert records[0]["variable"] == "embedding/embeddings"
    assert records[0]["shape"] == [6, 3]
    assert records[-1]["pattern"] is None


def test_variables_by_group_and_group_learning_rates():
    opt, variables = built()
    by_group = opt.variables_by_group()
    assert list(by_group) == opt.group_names
    names = {g: [v.path for v in vs] for g, vs in by_group.items()}
    assert names["frozen"] == ["embedding/embeddings"]
    assert names["default"] == ["head/bias"]
    lrs = opt.group_learning_rates()
    assert lrs == pytest.approx({"low": 0.003, "high": 0.04, "frozen": 0.0, "default": 0.01})


def test_derived_group_names_are_distinct():
    # The third group repeats "head": it gets no variable (warning) but still a distinct name.
    with pytest.warns(UserWarning, match="matched no variable"):
        opt, _ = built([("encoder", 0.1), ("head", 0.2), {"patterns": "head", "lr": 0.3}])
    names = opt.group_names
    assert len(set(names)) == 4 and names[-1] == "default"
    assert "encoder" in names[0] and "head" in names[1]


def test_raw_tf_variables_match_name_without_suffix():
    opt = AdamMultilr(learning_rate=0.01, pattern_lrs={r"^tower/w$": 0.5})
    w = tf.Variable(np.ones(3, np.float32), name="tower/w")
    b = tf.Variable(np.ones(2, np.float32), name="tower/b")
    opt.build([w, b])
    rows = {r.variable: r.group for r in opt.group_table().rows}
    assert rows["tower/w"] != "default" and rows["tower/b"] == "default"


def test_unmatched_pattern_warns_with_pattern_and_paths():
    with pytest.warns(UserWarning, match=r"enocder") as record:
        built([{"patterns": ["enocder"], "lr": 0.1}, {"patterns": ["head"], "lr": 0.2}])
    message = str(record[0].message)
    assert "encoder/layer_0/kernel" in message or "embedding/embeddings" in message


def test_all_patterns_matching_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        built()


def test_strict_makes_unmatched_pattern_an_error():
    with pytest.raises(ValueError, match=r"enocder"):
        built([{"patterns": ["enocder"], "lr": 0.1}], strict=True)


def test_no_retrace_and_set_group_learning_rate_changes_trajectory():
    init, grads = initial_values(20), random_grads(4, seed=21)
    opt, variables = built(seed=20)
    traces = []

    @tf.function
    def step(gs):
        traces.append(1)
        opt.apply(gs, variables)

    for i, g in enumerate(grads):
        if i == 2:
            opt.set_group_learning_rate("high", 0.01)
            opt.set_group_learning_rate("default", 0.02)
            assert opt.group_learning_rates()["high"] == pytest.approx(0.01)
        step([tf.constant(g[k]) for k in SHAPES])
    assert len(traces) == 1
    groups = [
        RefGroup(["encoder/layer_0"], 0.003),
        RefGroup(["encoder", r"head/kernel$"], lambda t: 0.04 if t < 2 else 0.01),
        RefGroup(["embedding"], 0.0),
    ]
    ref = NumpyAdam(init, learning_rate=lambda t: 0.01 if t < 2 else 0.02, groups=groups)
    for g in grads:
        ref.step(g)
    assert_rel_close({v.path: v.numpy() for v in variables}, ref.params)


def test_set_group_learning_rate_rejects_bad_requests():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
    opt, _ = built([*LAYOUT, {"patterns": ["head/bias"], "lr": schedule, "name": "sched"}])
    with pytest.raises(ValueError, match=r"'nope'.*\['low', 'high'"):
        opt.set_group_learning_rate("nope", 0.1)
    with pytest.raises(ValueError, match=r"-1\.0"):
        opt.set_group_learning_rate("high", -1.0)
    with pytest.raises(ValueError, match=r"'frozen'.*frozen"):
        opt.set_group_learning_rate("frozen", 0.1)
    with pytest.raises(ValueError, match=r"'sched'.*schedule"):
        opt.set_group_learning_rate("sched", 0.1)
    assert opt.group_learning_rates()["high"] == pytest.approx(0.04)


def test_group_learning_rates_in_graph_and_with_schedules():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
    layout = [{"patterns": ["encoder"], "lr": schedule, "name": "enc"}, *LAYOUT[2:]]
    opt, variables = built(layout)
    grads = [tf.zeros(v.shape) for v in variables]
    for _ in range(3):
        opt.apply(grads, variables)
    lrs = opt.group_learning_rates()
    # Reported at the current iteration count (3): 0.1 * 0.5**3.
    assert lrs == pytest.approx({"enc": 0.0125, "frozen": 0.0, "default": 0.01})

    @tf.function
    def in_graph():
        return opt.group_learning_rates()

    tensors = in_graph()
    assert all(t.dtype == tf.float32 and t.shape == () for t in tensors.values())
    assert {k: float(t) for k, t in tensors.items()} == pytest.approx(lrs)
