"""The workdir's folder layout has one owner (storage/workdir_layout.py): its paths, and a scan
of the package's string constants that fails when another module spells one of its names."""

from __future__ import annotations

import ast
import os
import pathlib

import pytest

from capreolus_opt.storage import workdir_layout
from capreolus_opt.storage.paths import UnsafePathError
from capreolus_opt.storage.workdir_layout import Workdir, best_folder_weights, swap_folders

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "capreolus_opt"
OWNER = PACKAGE / "storage" / "workdir_layout.py"
#: Names of the layout that mean nothing else in the package (``vocab.txt`` is also a
#: checkpoint folder's file, ``checkpoint`` a common word: both left out).
LAYOUT_NAMES = {
    workdir_layout.DEFAULT_BASE,
    workdir_layout.CHECKPOINT_STATE_ASIDE,
    workdir_layout.OWNER_FILE,
    workdir_layout.LOCK_FILE,
    workdir_layout.EVALUATIONS,
    workdir_layout.BEST,
    workdir_layout.BEST_STATE,
    workdir_layout.MANIFEST,
    workdir_layout.MODEL_FILE,
    workdir_layout.WEIGHTS_FILE,
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        kinds = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr):
            found.add(id(node.body[0].value))
    return found


def layout_spellings(path: pathlib.Path) -> list[str]:
    """``line: constant`` for every string constant (docstrings aside) of the file at ``path``
    that is a layout name or a path with one as a component (``"best/reranker.json"``,
    f-string parts such as ``"/best"``); prose (a constant with a space) is not a path."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in docs or " " in node.value:
            continue
        if set(node.value.replace("\\", "/").split("/")) & LAYOUT_NAMES:
            hits.append(f"{node.lineno}: {node.value!r}")
    return hits


def test_the_scan_finds_a_spelt_layout_name(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        '"""Docstrings may say best/reranker.json."""\n'
        'import os\n'
        'a = os.path.join(root, "best", "reranker.json")\n'
        'b = f"{root}/evaluations"\n'
        'c = "no best/ folder here: prose"\n'
    )  # fmt: skip
    assert layout_spellings(module) == ["3: 'best'", "3: 'reranker.json'", "4: '/evaluations'"]


def test_no_module_but_the_owner_spells_the_workdir_layout():
    spelt = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != OWNER and (hits := layout_spellings(path))
    }
    assert not spelt, f"use capreolus_opt.storage.workdir_layout instead: {spelt}"


def test_paths_of_a_workdir():
    layout = Workdir("/w")
    assert layout.checkpoints == "/w"
    assert layout.best_manifest == "/w/best/reranker.json"
    assert layout.best_state == "/w/best/best.json"
    assert layout.best_model == "/w/best/model.keras"
    assert layout.best_weights == "/w/best/model.weights.npz"
    assert layout.evaluations == "/w/evaluations"
    assert layout.lock_file == "/w/.capreolus-owner.lock"
    assert (layout.best_new, layout.best_old) == swap_folders("/w/best")
    assert swap_folders("/w/best") == ("/w/best.new", "/w/best.old")


def test_for_run_defaults_to_workdirs_and_stays_inside_its_base(tmp_path):
    uuid = "0123456789abcdef0123456789abcdef"
    assert Workdir.for_run("", uuid).root == os.path.join("workdirs", uuid)
    assert Workdir.for_run(str(tmp_path), uuid).root == str(tmp_path / uuid)
    for hostile in ("../elsewhere", "/etc", ""):
        with pytest.raises(UnsafePathError):
            Workdir.for_run(str(tmp_path), hostile)


def test_best_weights_prefer_the_whole_model_and_has_checkpoints(tmp_path):
    layout = Workdir(str(tmp_path))
    assert not layout.has_checkpoints() and best_folder_weights(layout.best) is None
    os.makedirs(layout.best)
    pathlib.Path(layout.best_weights).write_bytes(b"npz")
    assert best_folder_weights(layout.best) == layout.best_weights
    pathlib.Path(layout.best_model).write_bytes(b"keras")  # a workdir that holds both
    assert best_folder_weights(layout.best) == layout.best_model
    (tmp_path / "ckpt-4.index").write_bytes(b"")
    assert layout.has_checkpoints()
    assert not Workdir(str(tmp_path / "missing")).has_checkpoints()
