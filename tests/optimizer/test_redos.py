"""Config regexes cannot hang a run: matching is bounded in time and a catastrophic pattern is
refused naming it (``pattern_lrs`` and layer-wise decay patterns alike)."""

from __future__ import annotations

import re

import keras
import pytest

from capreolus_opt import AdamMultilr
from capreolus_opt.models.layerwise import layerwise_decay_pattern_lrs
from capreolus_opt.optimizer import bounded_regex
from capreolus_opt.optimizer.bounded_regex import PatternTimeoutError, compile_bounded

LONG_PATH = "a" * 5000 + "/kernel"


def test_nested_quantifier_on_a_long_path_is_refused_naming_it():
    # (a+)+$ is the textbook ReDoS: `re` would backtrack for hours on this path; the bounded
    # match stops and names the pattern, and short paths get re.search's answer.
    pattern = compile_bounded(r"(a+)+$", "pattern_lrs[0]['patterns'][0]")
    with pytest.raises(PatternTimeoutError, match=r"\]\[0\] '\(a\+\)\+\$' took more than .* on "
                       r"'aaaa.*\(5007 characters\)"):  # fmt: skip
        pattern.search(LONG_PATH)
    for path in ["aaaa", "x/aaa", "aab", "encoder/kernel"]:
        assert bool(pattern.search(path)) == bool(re.search(r"(a+)+$", path))


@pytest.mark.parametrize("pattern", [r"(a|aa)+$", r"^(a|a)+$", r"^(\w|\w\w)+$"])
def test_a_catastrophic_pattern_is_refused_when_compiled(pattern):
    with pytest.raises(PatternTimeoutError, match=re.escape(f"pattern_lrs[0] {pattern!r} took")):
        compile_bounded(pattern, "pattern_lrs[0]")


def test_a_path_the_probes_missed_is_refused_when_matched(monkeypatch):
    monkeypatch.setattr(bounded_regex, "_probes", lambda pattern: [])
    pattern = compile_bounded(r"^(x|xx)+$", "pattern_lrs[1]")
    with pytest.raises(PatternTimeoutError, match=r"pattern_lrs\[1\] '\^\(x\|xx\)\+\$' took"):
        pattern.search("x" * 200 + "!")


def test_adam_multilr_refuses_a_catastrophic_pattern_naming_it():
    with pytest.raises(ValueError, match=r"pattern_lrs\[0\]\['patterns'\]\[0\] '\(a\|aa\)\+\$'"):
        AdamMultilr(learning_rate=1e-3, pattern_lrs=[{"patterns": [r"(a|aa)+$"], "lr": 1e-4}])


def test_layerwise_layer_regex_is_bounded_too():
    with pytest.raises(ValueError, match=r"\['layer_regex'\] '\(\(a\|aa\)\+\)\(\\\\d\+\)/' took"):
        layerwise_decay_pattern_lrs(
            base_lr=1e-3, decay=0.9, head_patterns=["^head/"],
            stacks=[{"name": "t", "layer_regex": r"((a|aa)+)(\d+)/", "num_layers": 2}],
        )  # fmt: skip


def test_ordinary_patterns_still_group_variables():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="enc"),
                              keras.layers.Dense(1, name="head")])  # fmt: skip
    opt = AdamMultilr(learning_rate=1e-3, pattern_lrs=[{"patterns": ["head/"], "lr": 1e-2}])
    opt.build(model.trainable_variables)
    assert [len(v) for v in opt.variables_by_group().values()] == [2, 2]


def test_groups_command_names_the_catastrophic_pattern(capsys):
    import argparse

    from capreolus_opt.commands import groups
    from tests.cli_helpers import SMOKE

    binding = 'AdamMultilr.pattern_lrs = [{"patterns": ["(a|aa)+$"], "lr": 1e-4}]'
    args = argparse.Namespace(gin_files=[SMOKE], gin_param=[binding], strict=False, format="text")
    assert groups.run(args) == 2
    err = capsys.readouterr().err
    assert "error: pattern_lrs[0]['patterns'][0] '(a|aa)+$' took more than" in err
    assert "Traceback" not in err
