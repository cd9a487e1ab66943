"""Each run status and each exit code has one owning module: a scan of the package's source.

Run statuses (``"COMPLETED"``, ``"DIED"``, the stored ``"pruned"`` reason, ...) are written only in
:mod:`capreolus_opt.records.status`, and exit codes (``sys.exit(2)``, ``return 130``,
``returncode == 0``, ...) only in :mod:`capreolus_opt.records.exit_codes`; everything else names
them through those modules, so a grep for a status or a code finds its one owner. The scan reads
the syntax tree (docstrings and comments may mention the values).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import capreolus_opt
from capreolus_opt.records import exit_codes, status

PACKAGE = Path(capreolus_opt.__file__).resolve().parent
STATUS_OWNER = PACKAGE / "records" / "status.py"
EXIT_OWNER = PACKAGE / "records" / "exit_codes.py"

#: Every status value status.py defines, and Sacred's status for a queued run (we never write
#: one; a reader that meets it would add it to status.py).
STATUSES = {
    value for name, value in vars(status).items() if name.isupper() and isinstance(value, str)
} | {"QUEUED"}
EXIT_CODES = {
    value
    for name, value in vars(exit_codes).items()
    if name.isupper() and isinstance(value, int) and not isinstance(value, bool)
}
#: Literals that equal a status but belong to another vocabulary, with the reason.
OTHER_VOCABULARIES = {
    ("export/mlflow.py", "FAILED"): "MLflow's RunStatus name for a failed run",
}
#: Names that hold a process exit code.
_CODE_NAME = re.compile(r"(^|_)(code|codes|returncode|exit_code|exit_status|rc)$")
_EXIT_CALLS = {"exit", "_exit", "SystemExit", "quit"}


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def status_literals(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, value)`` of each string literal (not a docstring) equal to a run status."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in STATUSES
            and id(node) not in docs
        ):
            yield node.lineno, node.value


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value  # a dict key or a subscript
    if isinstance(node, ast.Subscript):
        return _name(node.slice)
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def _codes(node: ast.AST | None) -> Iterator[ast.Constant]:
    """Integer literals in ``node`` that are exit-code values (tuples and lists looked into)."""
    if node is None:
        return
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and type(sub.value) is int and sub.value in EXIT_CODES:
            yield sub


def _returns_exit_codes(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function whose result is a process exit code: ``main``, a ``handle_*`` command
    handler, or one that returns an ``exit_codes`` value somewhere."""
    if func.name == "main" or func.name.lstrip("_").startswith("handle"):
        return True
    for node in ast.walk(func):
        if isinstance(node, ast.Return) and node.value is not None:
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Name) and sub.id == "exit_codes":
                    return True
    return False


def exit_code_literals(path: Path) -> Iterator[tuple[int, int]]:
    """``(line, value)`` of each integer literal used as a process exit code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[int, ast.Constant] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in _EXIT_CALLS:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                found.update((id(c), c) for c in _codes(arg))
        elif isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg and _CODE_NAME.search(keyword.arg):
                    found.update((id(c), c) for c in _codes(keyword.value))
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_CODE_NAME.search(_name(side)) for side in sides):
                for side in sides:
                    found.update((id(c), c) for c in _codes(side))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_CODE_NAME.search(_name(t)) for t in targets):
                found.update((id(c), c) for c in _codes(node.value))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is not None and _CODE_NAME.search(_name(key)):
                    found.update((id(c), c) for c in _codes(value))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            positional = [*arguments.posonlyargs, *arguments.args]
            defaults = list(zip(positional[len(positional) - len(arguments.defaults) :],
                                arguments.defaults, strict=True))  # fmt: skip
            defaults += [
                (a, d) for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
            ]
            for arg, default in defaults:
                if default is not None and _CODE_NAME.search(arg.arg):
                    found.update((id(c), c) for c in _codes(default))
            if _returns_exit_codes(node):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Return):
                        found.update((id(c), c) for c in _codes(sub.value))
    for constant in sorted(found.values(), key=lambda c: c.lineno):
        yield constant.lineno, constant.value


def _where(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_status_strings_are_written_only_in_the_status_module():
    stray = [
        f"{_where(path)}:{line}: {value!r}"
        for path in _sources()
        if path != STATUS_OWNER
        for line, value in status_literals(path)
        if (_where(path), value) not in OTHER_VOCABULARIES
    ]
    assert stray == [], "use capreolus_opt.records.status instead of:\n" + "\n".join(stray)
    for where, value in OTHER_VOCABULARIES:  # each exception still exists (none goes stale)
        assert value in {v for _, v in status_literals(PACKAGE / where)}, where


def test_exit_codes_are_written_only_in_the_exit_codes_module():
    stray = [
        f"{_where(path)}:{line}: {value}"
        for path in _sources()
        if path != EXIT_OWNER
        for line, value in exit_code_literals(path)
    ]
    assert stray == [], "use capreolus_opt.records.exit_codes instead of:\n" + "\n".join(stray)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import sys\nsys.exit(2)\n", [2]),
        ("raise SystemExit(130)\n", [130]),
        ("def main():\n    return 0\n", [0]),
        ("def handle_x(args):\n    return 3\n", [3]),
        ("def f(p):\n    if p.returncode == 0:\n        pass\n", [0]),
        ("def f(code):\n    return code in (2, 130)\n", [2, 130]),
        ("def f():\n    return {'exit_code': 1}\n", [1]),
        ("def f(msg, code=2):\n    pass\n", [2]),
        ("def f(x):\n    if x: return exit_codes.OK\n    return 1\n", [1]),
        ("def f(xs):\n    return len(xs) == 1 or xs[0] + 2\n", []),  # no exit-code context
        ("def f(a, code=exit_codes.INPUT):\n    return a[1:3]\n", []),
    ],
)
def test_the_exit_code_scan_finds_literals_in_exit_code_places(tmp_path, source, expected):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert [value for _, value in exit_code_literals(path)] == expected


def test_the_status_scan_skips_docstrings_only(tmp_path):
    path = tmp_path / "module.py"
    path.write_text(
        '"""COMPLETED"""\n'
        "def f(run):\n"
        '    """FAILED"""\n'
        '    return run.status == "DIED" or run.reason == "pruned" or f"{run} FAILED"\n'
    )
    assert [value for _, value in status_literals(path)] == ["DIED", "pruned"]
