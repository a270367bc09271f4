"""The layers of docs/architecture.md, read from the code's own imports.

core <- tenants <- bots <- knowledge / leads / matching <- console <- config: a package imports only
its own layer or the ones below (the three kinds may use each other without forming a cycle), and
nothing imports config. A function-local import of project code is allowed only where a real cycle
forces it: in an AppConfig.ready, of a `tasks` module (tasks import the services that enqueue them),
or with a comment saying why on the line or just above it.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"core": 0, "tenants": 1, "bots": 2, "knowledge": 3, "leads": 3, "matching": 3, "console": 4, "config": 5}


def product_modules() -> list[Path]:
    return [
        path
        for package in LAYERS
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts and ".venv" not in path.parts
    ]


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, whether inside a function) for every import of project code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return [(module, line, local) for module, line, local in found if module.split(".")[0] in LAYERS]


def package_of(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


def test_every_app_belongs_to_a_layer():
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    assert apps <= set(LAYERS), f"apps without a layer in docs/architecture.md: {apps - set(LAYERS)}"


def test_imports_point_down_only():
    upward = []
    for path in product_modules():
        package = package_of(path)
        for module, line, _ in imports_of(path):
            target = module.split(".")[0]
            if target == package:
                continue
            if target == "config" or LAYERS[target] > LAYERS[package]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycles_between_apps():
    graph: dict[str, set[str]] = defaultdict(set)
    for path in product_modules():
        package = package_of(path)
        for module, _, _ in imports_of(path):
            if (target := module.split(".")[0]) != package:
                graph[package].add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in graph.get(start, ())
        )

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in list(graph) for b in graph[a] if reaches(b, a, {b}))
    assert not cycles, f"app-level import cycles: {cycles}"


def test_function_local_imports_say_why():
    unexplained = []
    for path in product_modules():
        if path.name == "apps.py":
            continue
        lines = path.read_text().splitlines()
        for module, line, local in imports_of(path):
            if not local or module.rsplit(".", 1)[-1] == "tasks":
                continue
            above = line - 2  # a comment may head a block of local imports
            while above > 0 and lines[above].strip().startswith(("from ", "import ")):
                above -= 1
            if "#" not in lines[line - 1] and not lines[above].strip().startswith("#"):
                unexplained.append(f"{path.relative_to(ROOT)}:{line} imports {module} inside a function")
    assert not unexplained, "function-local imports without a reason:\n" + "\n".join(unexplained)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from console.dashboard import project_dashboard\n", "imports that point up"),
        ("def f():\n    from bots.models import Chat\n", "function-local imports"),
    ],
)
def test_the_checks_catch_a_violation(tmp_path, monkeypatch, source, message):
    """The checks fail on what they forbid: a tenants module importing the console, an unexplained local import."""
    fake_root = tmp_path / "repo"
    for package in LAYERS:
        (fake_root / package).mkdir(parents=True)
    (fake_root / "tenants" / "bad.py").write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", fake_root)
    check = test_imports_point_down_only if "up" in message else test_function_local_imports_say_why
    with pytest.raises(AssertionError, match=message):
        check()
