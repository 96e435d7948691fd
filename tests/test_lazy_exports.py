"""The libraries' lazy names (PEP 562) and the imports the type checker reads in their place agree."""

import ast
import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("package", ["morphlake.ingest", "morphlake.embed"])
def test_type_checking_imports_name_the_lazy_exports(package):
    module = importlib.import_module(package)
    tree = ast.parse(Path(module.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    typed = {
        alias.name: node.module.removeprefix(f"{package}.")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == module._EXPORTS
    for name in module._EXPORTS:
        assert getattr(module, name).__name__ == name
