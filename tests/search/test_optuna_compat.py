"""Optuna's private names sit in one module: they exist in the installed Optuna, the version
check says what it should, failing another process's trial works on a real SQLite study, and no
other module of the package touches them."""

from __future__ import annotations

import ast
import importlib
import pathlib

import optuna
import pytest

from capreolus_opt import framework_versions
from capreolus_opt.search import optuna_compat

PACKAGE = pathlib.Path(optuna_compat.__file__).resolve().parents[1]
PRIVATE = {attr for _, attr in optuna_compat.PRIVATE_NAMES.values()}


def test_the_installed_optuna_has_every_private_name():
    assert optuna_compat.missing_private_names() == []
    study = optuna.create_study()
    trial = study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    assert study._storage is not None and frozen._trial_id == trial._trial_id


def test_another_minor_release_warns_and_another_major_refuses(monkeypatch):
    monkeypatch.setattr(optuna, "__version__", "5.9.0")
    with pytest.warns(framework_versions.UntestedVersionWarning, match=r"Optuna 5.9.0 .*5.1.x"):
        importlib.reload(optuna_compat)
    monkeypatch.setattr(optuna, "__version__", "6.0.0")
    with pytest.raises(ImportError, match=r"needs Optuna 5.0.x, 5.1.x; Optuna 6.0.0"):
        importlib.reload(optuna_compat)
    monkeypatch.undo()
    importlib.reload(optuna_compat)


def test_a_missing_private_name_is_an_import_error_naming_it(monkeypatch):
    monkeypatch.setitem(optuna_compat.PRIVATE_NAMES, "FrozenTrial._trial_id",
                        (optuna.trial.FrozenTrial, "_gone"))  # fmt: skip
    with pytest.raises(ImportError, match=r"lacks FrozenTrial._trial_id, .*dead worker"):
        optuna_compat._check()


def test_fail_trial_fails_a_running_trial_once(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=storage).ask()  # another worker's trial
    study = optuna.load_study(study_name="s", storage=storage)
    (frozen,) = study.get_trials(deepcopy=False)
    assert optuna_compat.fail_trial(study, frozen, "died") is True
    (failed,) = study.get_trials(deepcopy=False)
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["stopped_reason"] == "died"
    assert optuna_compat.fail_trial(study, frozen, "died") is False  # finished: left alone


def test_no_module_but_optuna_compat_reads_optunas_private_names():
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "optuna_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                    found.append(f"{path.relative_to(PACKAGE)}: {ast.unparse(node)}")
    assert found == []
