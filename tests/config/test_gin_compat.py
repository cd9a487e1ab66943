"""gin's private names sit in one module: they exist in the installed gin, the version check
says what it should, and no other module of the package reads a private gin name or imports gin
outside ``capreolus_opt/config/``."""

from __future__ import annotations

import ast
import pathlib

import gin.config
import pytest

from capreolus_opt import framework_versions
from capreolus_opt.config import gin_compat

PACKAGE = pathlib.Path(gin_compat.__file__).resolve().parents[1]
COMPAT = pathlib.Path(gin_compat.__file__).resolve()


def test_the_private_names_exist_in_the_installed_gin():
    for name in gin_compat.PRIVATE_NAMES:
        assert hasattr(gin.config, name), name
    assert gin_compat.check_version() is None  # the pinned version is installed
    assert isinstance(gin_compat.bindings(), dict)
    assert gin_compat.find_configurable("AdamMultilr").selector == "capreolus_opt.AdamMultilr"
    assert gin_compat.find_configurable("NoSuchFactory") is None


def test_another_version_warns_in_one_line(monkeypatch):
    monkeypatch.setattr(framework_versions.metadata, "version", lambda name: "0.6.1")
    message = gin_compat.check_version()
    assert message is not None and "\n" not in message
    assert "gin-config 0.6.1" in message and "0.5.0" in message
    with pytest.warns(
        framework_versions.UntestedVersionWarning, match="gin-config 0.6.1 is installed"
    ):
        gin_compat._warn_if_untested()


def test_a_missing_private_name_is_an_import_error_naming_it(monkeypatch):
    monkeypatch.setattr(framework_versions.metadata, "version", lambda name: "0.7.0")
    monkeypatch.delattr(gin.config, "_LOCATION_PREFIXES")
    with pytest.raises(ImportError, match=r"gin-config 0.7.0 lacks gin.config._LOCATION_PREFIXES"):
        gin_compat.check_version()


def test_include_folders_are_searched_first_only_inside_the_block():
    before = list(gin.config._LOCATION_PREFIXES)
    with gin_compat.include_folders_first(["/a", "/b"]):
        assert gin.config._LOCATION_PREFIXES[:2] == ["/a", "/b"]
    assert gin.config._LOCATION_PREFIXES == before


def _private_gin_uses(tree: ast.AST) -> list[str]:
    """``gin.<...>._name`` attribute chains and ``from gin... import _name``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gin":
            found += [a.name for a in node.names if a.name.startswith("_")]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if node.attr.startswith("__"):
                continue
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "gin":
                found.append(ast.unparse(node))
    return found


def _imports_gin(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "gin" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gin":
            return True
    return False


def test_no_private_gin_name_outside_the_compat_module_and_no_gin_outside_config():
    private, importers = {}, []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(PACKAGE).as_posix()
        if path != COMPAT and _private_gin_uses(tree):
            private[rel] = _private_gin_uses(tree)
        if _imports_gin(tree) and not rel.startswith("config/"):
            importers.append(rel)
    assert not private
    assert not importers
    sample = ast.parse("import gin\nx = gin.config._CONFIG\nfrom gin.config import _REGISTRY\n")
    assert sorted(_private_gin_uses(sample)) == ["_REGISTRY", "gin.config._CONFIG"]  # the scan sees
