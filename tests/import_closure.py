"""The project files a stage script runs: itself, the ``stages/`` modules and every ``s2s`` module
it imports, directly or through others, read from the real import statements (``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "stages"
PACKAGE = ROOT / "src" / "s2s"


def _module_file(module: str) -> Path | None:
    """The file of a project module (``s2s.x``, ``s2s.model.y`` or a ``stages/`` sibling), else None."""
    parts = module.split(".")
    if parts[0] == "s2s":
        path = PACKAGE.joinpath(*parts[1:])
        if path.is_dir():
            return path / "__init__.py"
        return path.with_suffix(".py") if path.with_suffix(".py").exists() else None
    sibling = STAGES / f"{module}.py"
    return sibling if len(parts) == 1 and sibling.exists() else None


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from … import`` anywhere in ``path`` can load, with the
    packages above it (importing ``s2s.model.gemm`` runs ``s2s/__init__`` and ``s2s/model/__init__``)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return modules


def closure(script: Path) -> set[Path]:
    """``script`` and every project file it imports, directly or through others."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [f for f in map(_module_file, _imported_modules(path)) if f is not None]
    return seen


def code_deps(stage: str) -> list[str]:
    """The ``dvc.yaml`` code deps of a stage: its import closure, as sorted paths from the root."""
    return sorted(str(p.relative_to(ROOT)) for p in closure(STAGES / f"{stage}.py"))
