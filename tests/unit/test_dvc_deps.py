"""dvc.yaml's code deps are exactly the layers (folders of the package) each stage's command runs.

DVC reruns a stage when one of its ``deps`` changes, so a module the stage
imports but does not list leaves stale outputs that ``dvc status`` calls up to
date, and a module it lists but never runs reruns it for nothing. The closure is
computed from the source: every ``import`` and ``from ... import`` of a project
module anywhere in a file (imports inside functions included), transitively,
plus the package ``__init__.py`` files that hold code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "catsdogs"


def module_file(name: str) -> Path | None:
    """The file of a project module or package, or None when ``name`` is not one."""
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """The project modules a file imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != PACKAGE:
                continue
            found.add(node.module)
            # ``from catsdogs.models import vgg`` imports the module catsdogs.models.vgg.
            found |= {f"{node.module}.{alias.name}" for alias in node.names if module_file(f"{node.module}.{alias.name}")}
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    for name in list(found):
        parts = name.split(".")
        found |= {".".join(parts[:index]) for index in range(1, len(parts))}
    return found


def holds_code(path: Path) -> bool:
    """False for an ``__init__.py`` that holds nothing but a docstring."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def module_closure(module: str) -> set[str]:
    """Repository-relative paths of every project file that running ``python -m module`` executes."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if path is not None:
            todo.extend(imported_modules(path))
    parts = module.split(".")
    seen |= {".".join(parts[:index]) for index in range(1, len(parts))}
    files = {module_file(name) for name in seen} - {None}
    return {
        path.relative_to(ROOT).as_posix()
        for path in files
        if path.name != "__init__.py" or holds_code(path)
    }


def stage_commands() -> dict[str, tuple[list[str], list[str]]]:
    """Each dvc.yaml stage's modules (``python -m catsdogs.stages <name>`` runs the package's
    ``__main__`` and the stage's module) and its declared code deps (paths under the package)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    commands = {}
    for name, stage in stages.items():
        words = stage["cmd"].split()
        assert words[:3] == ["python", "-m", f"{PACKAGE}.stages"] and words[3:] == [name], (
            f"stage {name}: expected `python -m {PACKAGE}.stages {name}`, got {stage['cmd']!r}")
        deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in stage.get("deps", [])]
        modules = [f"{PACKAGE}.stages.__main__", f"{PACKAGE}.stages.{name}"]
        commands[name] = (modules, [dep for dep in deps if dep.split("/")[0] == PACKAGE])
    return commands


def code_deps(modules: list[str]) -> set[str]:
    """The deps that cover every file the modules run: a layer's folder (``catsdogs/data``) for a file in
    a layer, the file itself for the stage modules and the package's top-level modules."""
    needed = set()
    for path in set().union(*(module_closure(module) for module in modules)):
        parts = path.split("/")
        needed.add(path if len(parts) == 2 or parts[1] == "stages" else "/".join(parts[:2]))
    return needed


def deps_problems(stage: str, modules: list[str], declared: list[str]) -> list[str]:
    """What is wrong with one stage's code deps, one line per path (empty: exact)."""
    needed = code_deps(modules)
    missing = sorted(needed - set(declared))
    needless = sorted(set(declared) - needed)
    return [f"{stage}: missing {path}" for path in missing] + [f"{stage}: needless {path}" for path in needless]


@pytest.mark.parametrize("stage", sorted(stage_commands()))
def test_code_deps_are_exactly_the_layers_the_stage_runs(stage):
    modules, declared = stage_commands()[stage]
    problems = deps_problems(stage, modules, declared)
    assert not problems, "dvc.yaml deps do not match the imports:\n" + "\n".join(problems)


def test_the_closure_follows_lazy_and_transitive_imports():
    closure = module_closure(f"{PACKAGE}.stages.evaluate")
    # evaluate -> catsdogs.models.files, whose load_model imports catsdogs.models.layers inside the function.
    assert "catsdogs/models/layers.py" in closure
    assert "catsdogs/core/io.py" in closure
    assert "catsdogs/report/plotting.py" not in closure  # drawing figures is the reports stage's
    assert "catsdogs/__init__.py" not in closure  # a docstring only


def test_an_edit_to_plotting_or_downloading_never_reruns_training():
    for stage in ("train_scratch", "train_top", "finetune", "extract_features"):
        needed = code_deps(stage_commands()[stage][0])
        assert {"catsdogs/report", "catsdogs/sources", "catsdogs/predict"}.isdisjoint(needed), stage


def test_a_missing_and_a_needless_dep_are_named():
    modules, declared = stage_commands()["train_top"]
    problems = deps_problems("train_top", modules, [dep for dep in declared if dep != "catsdogs/train"])
    assert problems == ["train_top: missing catsdogs/train"]
    problems = deps_problems("train_top", modules, [*declared, "catsdogs/report"])
    assert problems == ["train_top: needless catsdogs/report"]


# Which layers a layer may import (itself always): the order of catsdogs/__init__.py's docstring.
ALLOWED_IMPORTS = {
    "core": set(),
    "sources": {"core"},
    "data": {"core"},
    "models": {"core"},
    "train": {"core", "data", "models"},
    "predict": {"core", "data", "models"},
    "report": {"core", "data", "models", "predict"},
    "stages": {"core", "sources", "data", "models", "train", "predict", "report"},
}


@pytest.mark.parametrize("layer", sorted(ALLOWED_IMPORTS))
def test_a_layer_imports_only_the_layers_below_it(layer):
    wrong = []
    for path in sorted((ROOT / PACKAGE / layer).rglob("*.py")):
        for name in imported_modules(path):
            parts = name.split(".")
            if len(parts) > 1 and parts[1] != layer and parts[1] not in ALLOWED_IMPORTS[layer]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)
