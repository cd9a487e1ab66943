"""Where `capreolus_opt` touches a framework's private names, found with `ast` (no import).

Shared by the Keras and TensorFlow compat tests: each passes the private names of its framework
(read from the installed classes and objects), the method names it allows as overrides, and the
compat module that may use them.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterable

import capreolus_opt

PACKAGE = pathlib.Path(capreolus_opt.__file__).parent


def private_names(*objects: object) -> set[str]:
    """Single-underscore attribute names of the objects (classes or instances), dunders excluded."""
    return {
        name
        for obj in objects
        for name in dir(obj)
        if name.startswith("_") and not name.startswith("__")
    }


def _imports(tree: ast.AST) -> set[str]:
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def _super_call(node: ast.Attribute) -> bool:
    value = node.value
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


def find_private_uses(
    names: set[str],
    *,
    hooks: Iterable[str],
    frameworks: tuple[str, ...] = ("keras", "tensorflow"),
    exempt: Iterable[str] = ("optimizer/keras_compat.py", "optimizer/tf_compat.py"),
) -> list[str]:
    """``"path:line: what"`` for every use of a name in `names` in a module of the package that
    imports one of `frameworks` (other modules hold no framework objects to touch), outside
    `exempt`: an attribute read or written, a string constant (``getattr(opt, "_x")``), or a
    method defined in a class. A method named in `hooks` (an override declared by a compat
    module) may be defined, and called on ``super()``."""
    hooks = set(hooks)
    exempt = {PACKAGE / path for path in exempt}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in exempt:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        if not any(module.split(".")[0] in frameworks for module in _imports(tree)):
            continue
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    is_method = isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    if is_method and item.name in names and item.name not in hooks:
                        found.append(f"{where}:{item.lineno}: method {item.name}")
            elif isinstance(node, ast.Attribute) and node.attr in names:
                if not (node.attr in hooks and _super_call(node)):
                    found.append(f"{where}:{node.lineno}: attribute {node.attr}")
            elif isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{where}:{node.lineno}: string {node.value!r}")
    return found


def find_private_modules(
    prefixes: tuple[str, ...], attributes: tuple[str, ...], exempt: Iterable[str]
) -> list[str]:
    """``"path:line: what"`` for every import of a module starting with one of `prefixes` (e.g.
    ``tensorflow.python``) and every attribute access named in `attributes` (e.g.
    ``__internal__``), in any module of the package outside `exempt`."""
    exempt = {PACKAGE / path for path in exempt}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in exempt:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            for module in modules:
                if any(module == p or module.startswith(p + ".") for p in prefixes):
                    found.append(f"{where}:{node.lineno}: import {module}")
            if isinstance(node, ast.Attribute) and node.attr in attributes:
                found.append(f"{where}:{node.lineno}: attribute {node.attr}")
    return found
