"""The architecture the README's Layout section draws, pinned: pages/ holds exactly the pages, core/ is in
layers with no import cycle and no module over ~400 lines, core never imports streamlit, and every
module says what it owns."""

from __future__ import annotations

import ast
from pathlib import Path

from core.settings import PROJECT_DIR
from ui.frame import PAGES

CORE = PROJECT_DIR / "core"
LAYERS = ("data", "model", "jobs", "train", "evaluate", "diagnose", "region", "cli")
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(path: Path) -> set[str]:
    """Modules of the project imported when `path` runs (imports under `if TYPE_CHECKING:` left out)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for child in block.body
        for node in ast.walk(child)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_pages_folder_holds_exactly_the_pages_and_the_navigation_names_them_all():
    scripts = {f"pages/{path.name}" for path in (PROJECT_DIR / "pages").iterdir() if path.suffix == ".py"}
    assert scripts == {entry.script for entry in PAGES if entry.script.startswith("pages/")}
    assert not (PROJECT_DIR / "pages" / "__init__.py").exists()
    for script in scripts:  # each page draws itself inside the shared frame
        assert "with page(" in (PROJECT_DIR / script).read_text(), script


def test_core_is_in_layers_with_no_import_cycle():
    modules = _modules()
    top_level = {name for name in modules if name.count(".") == 1 and name.split(".")[1] not in LAYERS}
    assert top_level <= {"core.__main__", "core.errors", "core.settings", "core.files", "core.constants",
                         "core.formatting"}, top_level  # fmt: skip
    graph = {
        name: {m for m in _runtime_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for dependency in graph[name]:
            assert state.get(dependency) != 1, "import cycle: " + " -> ".join([*trail, dependency])
            if dependency not in state:
                visit(dependency, [*trail, dependency])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_no_core_module_is_long_and_each_says_what_it_owns():
    for name, path in _modules().items():
        assert len(path.read_text().splitlines()) <= MAX_LINES, name
        assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no docstring"


def test_core_never_imports_streamlit():
    for name, path in _modules().items():
        assert not any(m.split(".")[0] == "streamlit" for m in _runtime_imports(path)), name
