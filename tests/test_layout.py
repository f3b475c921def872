"""The architecture the README's Layout section draws, pinned: pages/ holds exactly the pages, each at most
~200 lines; the packages are in layers (data → model → train → evaluate → diagnose/region → cli → ui →
pages) and none imports a higher one; no import cycle, `if TYPE_CHECKING:` imports included; no core
module over ~400 lines and no function over 60 lines outside bench/; core never imports streamlit, and
every module says what it owns.

The rules on sizes and directions carry explicit allow-lists of today's offenders (being shrunk in
parallel branches): each entry may only leave the list, and a new offender fails its rule."""

from __future__ import annotations

import ast
from pathlib import Path

from core.settings import PROJECT_DIR
from ui.frame import PAGES

CORE = PROJECT_DIR / "core"
LAYERS = ("data", "model", "jobs", "train", "evaluate", "diagnose", "region", "slides", "cli")
MAX_LINES = 420
MAX_FUNCTION_LINES = 60
MAX_PAGE_LINES = 200
# The rank of each package; a module may import its own rank or lower. The top-level modules of core
# (errors, settings, files, constants, formatting, probabilities, spawning, tensorflow_import) are the
# ground every layer stands on.
RANKS = {"core": 0, "core.data": 1, "core.model": 2, "core.jobs": 2, "core.train": 3, "core.evaluate": 4,
         "core.diagnose": 5, "core.region": 5, "core.slides": 6, "core.cli": 7, "core.__main__": 7, "ui": 8,
         "streamlit_app": 9, "pages": 9}  # fmt: skip

# Today's offenders, each to be removed from its list when fixed (never added to; the tests below
# fail on a new offender and on a listed one that no longer offends):
UPWARD_IMPORTS_ALLOWED: set[tuple[str, str]] = set()  # no module imports a higher layer
LONG_FUNCTIONS_ALLOWED: set[tuple[str, str]] = set()  # no function is over 60 lines
LONG_PAGES_ALLOWED: set[str] = set()  # every page is a short body of named steps


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(path: Path, *, type_checking: bool = False) -> set[str]:
    """Modules imported when `path` runs, at any depth (with `type_checking`, also those under
    `if TYPE_CHECKING:`, which a type checker follows as imports)."""
    tree = ast.parse(path.read_text())
    skipped = (
        set()
        if type_checking
        else {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for child in block.body
            for node in ast.walk(child)
        }
    )
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


def _project_files() -> list[Path]:
    """Every Python file of the project outside bench/ (and outside hidden and virtual-env folders)."""
    return [
        path
        for path in sorted(PROJECT_DIR.rglob("*.py"))
        if not {"bench", ".venv", "node_modules"} & set(path.relative_to(PROJECT_DIR).parts)
        and not any(part.startswith(".") for part in path.relative_to(PROJECT_DIR).parts)
    ]


def _rank(module: str) -> int | None:
    """The layer of a project module (the longest package prefix in RANKS); None outside the project."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        if ".".join(parts[:length]) in RANKS:
            return RANKS[".".join(parts[:length])]
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def upward_imports(modules: dict[str, Path]) -> set[tuple[str, str]]:
    """(module, imported module) for every import of a higher layer, TYPE_CHECKING ones included."""
    found = set()
    for name, path in modules.items():
        for imported in _runtime_imports(path, type_checking=True):
            if _rank(imported) is not None and _rank(imported) > _rank(name):
                found.add((name, imported))
    return found


def long_functions(files: list[Path], limit: int = MAX_FUNCTION_LINES) -> set[tuple[str, str]]:
    """(file, function) for every function or method longer than `limit` lines."""
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > limit:
                    found.add((path.relative_to(PROJECT_DIR).as_posix(), node.name))
    return found


def test_no_package_imports_a_higher_layer():
    modules = {_module_name(path): path for path in _project_files()}
    assert upward_imports({name: path for name, path in modules.items() if _rank(name) is not None}) == (
        UPWARD_IMPORTS_ALLOWED
    )


def test_the_direction_rule_finds_an_upward_import_even_under_type_checking(tmp_path):
    """The rule above is live: a model module importing core.evaluate, even for types only, offends."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from core.evaluate import metrics\n"
    )
    assert upward_imports({"core.model.probe": probe}) == {("core.model.probe", "core.evaluate")}
    assert upward_imports({"core.cli.probe": probe}) == set()


def test_no_function_is_longer_than_60_lines_outside_bench():
    assert long_functions(_project_files()) == LONG_FUNCTIONS_ALLOWED


def test_every_page_is_at_most_200_lines():
    pages = {f"pages/{path.name}": path for path in (PROJECT_DIR / "pages").glob("*.py")}
    long_pages = {name for name, path in pages.items() if len(path.read_text().splitlines()) > MAX_PAGE_LINES}
    assert long_pages == LONG_PAGES_ALLOWED


def test_core_is_in_layers_with_no_import_cycle():
    modules = _modules()
    top_level = {name for name in modules if name.count(".") == 1 and name.split(".")[1] not in LAYERS}
    assert top_level <= {"core.__main__", "core.errors", "core.settings", "core.files", "core.constants",
                         "core.formatting", "core.probabilities", "core.spawning",
                         "core.tensorflow_import"}, top_level  # fmt: skip
    graph = {  # TYPE_CHECKING imports included: a cycle a type checker follows is a cycle
        name: {m for m in _runtime_imports(path, type_checking=True) if m in modules and m != name}
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
