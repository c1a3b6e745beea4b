"""The layout keeps its promises: layers point down, no import cycles, small files.

Read from the source with `ast` (imports inside functions count too; those under
`if TYPE_CHECKING:` are for type hints and never run), so it stays true
as the code grows: trainer/config imports nothing else of trainer; the engine never
imports gradio and the GUI never imports torch; the GUI reaches the engine only through
its public doors; at most 12 modules lie directly under trainer/.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.helpers import ROOT

OURS = ("trainer", "lora_gui")
# What lora_gui may import of the engine: its public doors.
GUI_DOORS = ("trainer.api", "trainer.config", "trainer.presets")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            found[_module_name(path)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours (or any other, by its top name) that `path` imports, anywhere."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for inner in ast.walk(node)
    }  # imports for type hints only never run
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                out.add(sub if sub in known else module)
    return out


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _ours(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _package(module: str) -> str:
    """trainer.run.train -> trainer.run; trainer.api -> trainer.api; trainer -> trainer."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_cycles_between_modules():
    graph = _ours(_graph())
    graph = {m: deps - {"trainer"} for m, deps in graph.items()}  # every module's package init
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycles_between_packages():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, deps in _ours(_graph()).items():
        if module.startswith("trainer.") or module == "trainer":
            packages[_package(module)].update(_package(d) for d in deps if d.startswith("trainer."))
    packages = {p: deps - {p} for p, deps in packages.items()}
    assert _cycle(packages) is None, " -> ".join(_cycle(packages) or [])


def test_config_imports_nothing_else_of_the_engine():
    bad = {
        m: sorted(d for d in deps if d.startswith("trainer.") and not d.startswith("trainer.config"))
        for m, deps in _graph().items()
        if m.startswith("trainer.config")
    }
    assert not {m: d for m, d in bad.items() if d}, bad


def test_engine_never_imports_the_gui_and_the_gui_never_imports_torch():
    graph = _graph()
    for module, deps in graph.items():
        tops = {d.split(".")[0] for d in deps}
        if module.startswith("trainer"):
            assert not tops & {"gradio", "lora_gui"}, module
        else:
            assert "torch" not in tops, module
            engine = {d for d in deps if d.split(".")[0] == "trainer"}
            outside = sorted(d for d in engine if not d.startswith(GUI_DOORS))
            assert not outside, f"{module} imports {outside}; use {GUI_DOORS}"


def test_trainer_top_level_stays_small():
    top = sorted(p.name for p in (ROOT / "trainer").glob("*.py"))
    assert len(top) <= 12, top


def test_no_file_over_400_lines():
    long = {}
    for folder in ("trainer", "lora_gui", "scripts", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            n = len(path.read_text(encoding="utf-8").splitlines())
            if n > 400:
                long[str(path.relative_to(ROOT))] = n
    assert not long, long


def test_every_package_says_what_it_holds_and_may_import():
    for init in (ROOT / "trainer").rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in doc.lower(), f"{init.relative_to(ROOT)}: say what it may import"
