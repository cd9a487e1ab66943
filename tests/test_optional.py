"""Every optional package is imported through ``capreolus_opt.optional.require``, and a missing
one is a one-line hint naming the extra (exit 2 from the CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from capreolus_opt import cli
from capreolus_opt.optional import EXTRAS, MissingExtraError, install_command, require
from tests.cli_helpers import ROOT, SMOKE

PACKAGE = ROOT / "capreolus_opt"


def _direct_imports(path: Path) -> list[str]:
    """``file:line module`` for each import of an optional package that bypasses require()."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [str(node.args[0].value)]
        else:
            continue
        for name in names:
            if name.split(".")[0] in EXTRAS:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_no_module_imports_an_optional_package_directly():
    files = [p for p in PACKAGE.rglob("*.py") if p.name != "optional.py" or p.parent != PACKAGE]
    assert len(files) > 50
    offenders = [hit for path in files for hit in _direct_imports(path)]
    assert offenders == []


def test_the_scan_sees_each_kind_of_import(tmp_path):
    sample = ROOT / "capreolus_opt" / "_scan_sample.py"
    sample.write_text(
        "import optuna\nfrom submitit.core import utils\nimport importlib\n"
        "importlib.import_module('mlflow.tracking')\nimport numpy\n"
    )
    try:
        hits = _direct_imports(sample)
    finally:
        sample.unlink()
    assert [hit.split(" ")[1] for hit in hits] == ["optuna", "submitit.core", "mlflow.tracking"]


def test_every_extra_named_exists_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    for extra in set(EXTRAS.values()):
        assert f"\n{extra} = [" in text, extra


def test_a_missing_package_is_a_one_line_hint(monkeypatch):
    modules = __import__("sys").modules
    # As if never installed: no submitit module, nor any submodule an earlier test imported.
    for name in [n for n in modules if n == "submitit" or n.startswith("submitit.")]:
        monkeypatch.delitem(modules, name)
    monkeypatch.setitem(modules, "submitit", None)
    with pytest.raises(MissingExtraError) as info:
        require("submitit.core.utils", "tune")
    message = str(info.value)
    assert "\n" not in message
    assert "'submitit'" in message
    assert message.endswith("pip install 'capreolus_opt[tune]'")
    assert isinstance(info.value, ImportError)


def test_the_hub_hint_gives_both_commands():
    assert install_command("hub") == (
        "pip install 'capreolus_opt[hub]' && pip install --no-deps 'keras-hub==0.32.0'"
    )


def test_an_installed_package_is_returned():
    import optuna

    assert require("optuna", "tune") is optuna


def test_a_wrong_extra_is_a_programming_error():
    with pytest.raises(ValueError, match=r"'optuna' comes with extra 'tune'"):
        require("optuna", "mlflow")


def test_the_cli_turns_a_missing_extra_into_exit_2_and_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", SMOKE, "--grid", "train.num_steps=[1]", "--launcher", "slurm"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "capreolus-opt sweep: error: submitit is not installed (no module named 'submitit'): "
        "pip install 'capreolus_opt[tune]'"
    )
    assert not (tmp_path / "runs").exists()
