"""The package's layout rules: imports point one way, no circles, no oversized files or functions.

Every ``mobilecnn`` import in ``src/`` (module level and inside functions) is an arrow between
two modules. Arrows may not form a circle, and between packages they point down:
``cli`` -> ``train``/``deploy`` -> ``data``/``models``/``weights`` -> ``layers`` and the
utilities.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mobilecnn"

# The rank of each top-level part: an import may only point to a lower or equal rank (equal
# only within the same package).
RANKS = {
    "fileio": 0, "devices": 0, "limits": 0, "version": 0, "layers": 1, "counting": 3,
    "models": 2, "data": 2, "weights": 3, "factory": 4, "deploy": 4, "train": 5, "inference": 5,
    "cli": 6, "__main__": 7, "__init__": 7, "hubconf": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The ``mobilecnn`` modules ``path`` imports (relative imports resolved)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("mobilecnn"):
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mobilecnn"))
    found.discard(module)
    return found


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (SRC / relative).with_suffix(".py").is_file() or (SRC / relative).is_dir()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_circles() -> None:
    graph = _graph()
    # A package's __init__ re-exports its children; the arrow from a child up to its own
    # package's __init__ is what makes a circle, so those are what we look for.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_down() -> None:
    upward = []
    for module, targets in _graph().items():
        source = _part(module)
        for target in targets:
            goal = _part(target)
            if goal == source or goal == "__init__" and source == "__init__":
                continue
            if RANKS[goal] >= RANKS[source]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports pointing up or sideways: " + ", ".join(sorted(upward))


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_files_stay_readable(path: Path) -> None:
    lines = path.read_text().count("\n")
    assert lines <= 450, f"{path.relative_to(SRC)} has {lines} lines; split it by job"


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function from its first statement after the docstring to its end."""
    body = function.body
    first = body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str) and len(body) > 1):
        first = body[1]
    return (function.end_lineno or first.lineno) - first.lineno + 1


def test_functions_read_in_one_sitting() -> None:
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = _code_lines(node)
                if lines > 60:
                    long.append(f"{path.relative_to(SRC)}:{node.name} ({lines} lines)")
    assert not long, "functions over 60 lines of code; split them: " + ", ".join(long)
