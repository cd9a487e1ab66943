"""The package's import graph is the one docs/ARCHITECTURE.md draws, and every arrow points down.

The "Import graph" block of docs/ARCHITECTURE.md lists each layer (top first) and, for every
package of that layer, the packages it imports directly (static imports anywhere in the module,
and ``importlib.import_module("capreolus_opt....")`` with a literal name). This test recomputes the
graph from the source: a new import, a new package or a stale line in the document fails here, and
so does any import from a lower layer to a higher one. To redraw the block after a deliberate
change: ``python tests/test_layers.py --write``.
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "capreolus_opt"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- import graph: begin -->", "<!-- import graph: end -->"
NONE = "(nothing)"
_LINE = re.compile(r"^(\d+)\s+([\w.]+)\s+->\s*(.*)$")


def _unit(path: pathlib.Path) -> str:
    """The graph's node for a source file: its top-level package, or the module at the top."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _targets(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names.add(stem)
            names.update(f"{stem}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def _exists(dotted: str) -> bool:
    rel = pathlib.Path(*dotted.split(".")[1:])
    return (PACKAGE / rel).is_dir() or (PACKAGE / rel).with_suffix(".py").is_file()


def import_graph() -> dict[str, set[str]]:
    """``{unit: units it imports}`` over ``capreolus_opt/`` (self-imports left out)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        if path == PACKAGE / "__init__.py":
            continue  # lazy re-exports of the public names, resolved on first access
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        deps = graph.setdefault(unit, set())
        for name in _targets(tree, module, path.name == "__init__.py"):
            parts = name.split(".")
            if parts[0] != "capreolus_opt" or len(parts) < 2 or not _exists(".".join(parts[:2])):
                continue
            if parts[1] != unit:
                deps.add(parts[1])
    return graph


def documented() -> tuple[dict[str, int], dict[str, set[str]]]:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    layers, graph = {}, {}
    for line in block.splitlines():
        match = _LINE.match(line.strip())
        if match:
            layer, unit, deps = match.groups()
            layers[unit] = int(layer)
            graph[unit] = {d.strip() for d in deps.split(",") if d.strip() not in ("", NONE)}
    return layers, graph


def render(layers: dict[str, int], graph: dict[str, set[str]]) -> str:
    width = max(len(u) for u in graph)
    rows = sorted(graph, key=lambda u: (layers.get(u, 99), u))
    lines = [
        f"{layers.get(u, '?'):>2}  {u:<{width}} -> {', '.join(sorted(graph[u])) or NONE}"
        for u in rows
    ]
    return "\n".join(["```text", *lines, "```"])


def test_the_document_draws_the_real_import_graph():
    layers, drawn = documented()
    real = import_graph()
    assert set(drawn) == set(real), "packages added or removed: redraw the block (--write)"
    for unit in real:
        assert drawn[unit] == real[unit], f"{unit} imports {sorted(real[unit])}"


def test_every_import_points_to_a_lower_layer():
    layers, _ = documented()
    upward = [
        f"{unit} (layer {layers[unit]}) -> {dep} (layer {layers[dep]})"
        for unit, deps in import_graph().items()
        for dep in deps
        if layers[dep] <= layers[unit]
    ]
    assert not upward


if __name__ == "__main__" and "--write" in sys.argv:
    layers, _ = documented()
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    DOC.write_text(
        f"{head}{BEGIN}\n{render(layers, import_graph())}\n{END}{tail}", encoding="utf-8"
    )
