"""Pages call services and selectors, never the API layer (issue #12): no module of web/ imports one of
incidents.api or stability.api."""

import ast
from pathlib import Path

import web

API_PACKAGES = ("incidents.api", "stability.api", "config.api")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_page_module_imports_the_api_layer():
    offenders = {
        f"{path.relative_to(Path(web.__file__).parent)}: {name}"
        for path in Path(web.__file__).parent.rglob("*.py")
        for name in _imports(path)
        if name.startswith(API_PACKAGES)
    }
    assert not offenders
