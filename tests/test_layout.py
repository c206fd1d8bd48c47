"""The layout rules of ARCHITECTURE.md, checked on the source: which way imports go, relative imports
only, ComfyUI only in nodes/, jobs independent of each other, no name prefix doing a folder's job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .comfyui_server import REPO

PACK_FOLDERS = ("nodes", "cli", "trainers", "depthstyle_core")
COMFY_MODULES = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "execution", "node_helpers"}
JOBS = ("fast", "any_style", "optimize", "datasets")
# What each part of the pack may import of the others (its own folder always).
ALLOWED = {
    "nodes": {"nodes", "trainers", "depthstyle_core"},
    "cli": {"cli", "trainers", "depthstyle_core"},
    "trainers": {"trainers", "depthstyle_core"},
    "depthstyle_core": {"depthstyle_core"},
}


def pack_modules() -> dict[Path, tuple[str, ...]]:
    """Every source file of the pack and its module path inside the package (``("trainers", "run",
    "loop")``; a package's ``__init__`` is the package itself)."""
    files = {REPO / "__init__.py": ()}
    for folder in PACK_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            files[path] = parts[:-1] if parts[-1] == "__init__" else parts
    return files


def imports_of(path: Path, module: tuple[str, ...]) -> list[tuple[int, tuple[str, ...] | None, str]]:
    """``(line, target, top-level name)``: ``target`` is the module path inside the pack for a relative
    import (None for any other import, whose top-level name is given)."""
    package = module if path.name == "__init__.py" else module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            found.append((node.lineno, (*base, *(node.module or "").split(".")), ""))
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, None, node.module.split(".")[0]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, None, alias.name.split(".")[0]) for alias in node.names)
    return found


def test_the_rules_are_checked_on_real_files():
    modules = pack_modules()
    assert len(modules) > 100
    loop = REPO / "trainers" / "run" / "loop.py"
    targets = {target for _, target, _ in imports_of(loop, modules[loop]) if target}
    assert ("depthstyle_core", "errors") in targets and ("trainers", "distributed") in targets


@pytest.mark.parametrize("part", PACK_FOLDERS)
def test_imports_go_one_way(part):
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {'.'.join(target)}"
        for path, module in pack_modules().items()
        if module[:1] == (part,)
        for line, target, _ in imports_of(path, module)
        if target is not None and target[0] not in ALLOWED[part]
    ]
    assert not wrong, "\n".join(wrong)


def test_only_nodes_import_comfyui_and_the_pack_imports_itself_relatively():
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path, module in pack_modules().items()
        for line, target, name in imports_of(path, module)
        if target is None
        and (name == "depthstyle" or (name in COMFY_MODULES and module[:1] != ("nodes",)))
    ]
    assert not wrong, "\n".join(wrong)


def test_the_jobs_do_not_import_each_other():
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {'.'.join(target)}"
        for path, module in pack_modules().items()
        if module[:1] == ("trainers",) and len(module) > 1 and module[1] in JOBS
        for line, target, _ in imports_of(path, module)
        if target is not None and target[:1] == ("trainers",) and len(target) > 1
        if target[1] in JOBS and target[1] != module[1]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_name_prefix_does_a_folders_job():
    """``trainers/optimize_plan.py`` beside ``trainers/optimize/``, or ``optimize/optimize_plan.py``
    inside it, should be ``optimize/plan.py``."""
    wrong = []
    for folder in [REPO / part for part in PACK_FOLDERS]:
        for package in [folder, *(p.parent for p in folder.rglob("*/__init__.py"))]:
            for sub in (p.parent for p in package.glob("*/__init__.py")):
                wrong += [p for p in package.glob(f"{sub.name}_*.py")]
                wrong += [p for p in sub.glob(f"{sub.name}_*.py")]
    assert not wrong, [str(p.relative_to(REPO)) for p in wrong]
