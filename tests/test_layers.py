"""The packages are floors, and an import only ever points down (docs/design-notes.md, README "Layout").

serving/ is the ground floor (the image ships it alone), then training/, monitoring/ (the loop's analysis),
pipelines/ (stages and commands) and bench/. Read from the source with `ast`, so a lazy import inside a
function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLOORS = ["serving", "training", "monitoring", "pipelines", "bench"]


def imports(path: Path) -> set[str]:
    """Every module of ours that `path` imports, as dotted names (a `from pkg import mod` names pkg.mod)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in FLOORS}


def graph() -> dict[str, set[str]]:
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts): p
               for floor in FLOORS for p in (REPO / floor).glob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m != name} for name, path in modules.items()}


def floor(module: str) -> int:
    return FLOORS.index(module.split(".")[0])


@pytest.mark.parametrize("package", FLOORS)
def test_imports_point_down(package: str) -> None:
    upward = sorted(f"{m} imports {d}" for m, deps in graph().items() if m.startswith(package + ".")
                    for d in deps if floor(d) > floor(m))
    assert not upward, "an import points up a floor: " + "; ".join(upward)


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(edges[module]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep):], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "modules import each other in a loop: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_ground_floor_needs_no_heavy_library() -> None:
    """The serving image installs only the serve extra: no torch, Lightning, scikit-learn or report library, and
    MLflow only in the MLflow Model's own code (kept out of the image by .dockerignore)."""
    heavy = {"torch", "lightning", "torchmetrics", "sklearn", "scipy", "matplotlib", "pandas", "mlflow", "pyarrow"}
    offenders = []
    for path in sorted((REPO / "serving").glob("*.py")):
        if path.name == "pyfunc.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        offenders += [f"{path.name}: {n}" for n in sorted(names) if n.split(".")[0] in heavy]
    assert not offenders, offenders
    assert "serving/pyfunc.py" in (REPO / ".dockerignore").read_text().splitlines()
