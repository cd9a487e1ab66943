"""``capreolus-opt groups`` on a config that is wrong: exit 2 and one line naming the problem."""

from __future__ import annotations

import argparse

import pytest

from capreolus_opt.commands import groups
from tests.cli_helpers import SMOKE


def _groups(*gin_files: str, bindings: tuple[str, ...] = (), strict: bool = False) -> int:
    args = argparse.Namespace(
        gin_files=list(gin_files), gin_param=list(bindings), strict=strict, format="text"
    )
    return groups.run(args)


@pytest.mark.parametrize(
    ("files", "bindings", "strict", "expected"),
    [
        (("missing.gin",), (), False, "gin file 'missing.gin' does not exist"),
        ((SMOKE,), ("AdamMultilr.learnig_rate = 1e-3",), False,
         "doesn't have a parameter named 'learnig_rate'"),
        ((SMOKE,), ("train.num_steps = [",), False, "could not parse gin binding"),
        ((SMOKE,), ('AdamMultilr.pattern_lrs = [{"patterns": ["^nothing/"], "lr": 1e-4}]',),
         True, "matched no variable"),
    ],
)  # fmt: skip
def test_a_config_error_exits_2_with_one_line(capsys, files, bindings, strict, expected):
    assert _groups(*files, bindings=bindings, strict=strict) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("capreolus-opt groups: error: ") and expected in err
    assert "\n" not in err and "Traceback" not in err and captured.out == ""
