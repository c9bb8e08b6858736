"""Imports point one way: the engine uses data, models and the shared core, never the
parts built on it (the command line, serving, inference, inspection, the benchmark)."""
from __future__ import annotations

import ast
import pathlib

import convnets.engine

_ABOVE = {"cli", "serve", "inference", "inspect", "perf"}


def _imported_parts(path: pathlib.Path) -> set[str]:
    """The convnets subpackages or modules a file of convnets.engine imports."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level >= 2:  # from ..x import y: x is a part of convnets
                parts.add((node.module or "").split(".")[0] or node.names[0].name)
            elif node.level == 0 and (node.module or "").startswith("convnets."):
                parts.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            parts |= {a.name.split(".")[1] for a in node.names if a.name.startswith("convnets.")}
    return parts


def test_the_engine_imports_nothing_above_it():
    root = pathlib.Path(convnets.engine.__file__).parent
    found = {path.name: sorted(_imported_parts(path) & _ABOVE) for path in root.glob("*.py")}
    assert {name: parts for name, parts in found.items() if parts} == {}
