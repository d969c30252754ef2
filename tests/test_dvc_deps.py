"""dvc.yaml's code deps are exactly the project modules each stage's command runs.

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

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "stages"


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
            # ``from stages.lib import vgg`` imports the module stages.lib.vgg.
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


def stage_commands() -> dict[str, tuple[str, list[str]]]:
    """Each dvc.yaml stage's ``python -m`` module and its declared code deps (project .py files)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    commands = {}
    for name, stage in stages.items():
        words = stage["cmd"].split()
        assert words[:2] == ["python", "-m"], f"stage {name}: expected `python -m stages.<module>`, got {stage['cmd']!r}"
        deps = [dep if isinstance(dep, str) else next(iter(dep)) for dep in stage.get("deps", [])]
        commands[name] = (words[2], [dep for dep in deps if dep.endswith(".py")])
    return commands


def deps_problems(stage: str, module: str, declared: list[str]) -> list[str]:
    """What is wrong with one stage's code deps, one line per file (empty: exact)."""
    needed = module_closure(module)
    missing = sorted(needed - set(declared))
    needless = sorted(set(declared) - needed)
    return [f"{stage}: missing {path}" for path in missing] + [f"{stage}: needless {path}" for path in needless]


@pytest.mark.parametrize("stage", sorted(stage_commands()))
def test_code_deps_are_exactly_the_modules_the_stage_runs(stage):
    module, declared = stage_commands()[stage]
    problems = deps_problems(stage, module, declared)
    assert not problems, "dvc.yaml deps do not match the imports:\n" + "\n".join(problems)


def test_the_closure_follows_lazy_and_transitive_imports():
    closure = module_closure("stages.evaluate")
    # stages.evaluate -> stages.lib.model_files, whose load_model imports stages.lib.layers inside the function.
    assert "stages/lib/layers.py" in closure
    assert "stages/lib/io.py" in closure and "stages/__init__.py" in closure
    assert "stages/lib/plotting.py" not in closure  # drawing figures is the reports stage's
    assert "stages/lib/__init__.py" not in closure  # a docstring only


def test_a_missing_and_a_needless_dep_are_named():
    module, declared = stage_commands()["train_top"]
    problems = deps_problems("train_top", module, [dep for dep in declared if dep != "stages/lib/seeding.py"])
    assert problems == ["train_top: missing stages/lib/seeding.py"]
    problems = deps_problems("train_top", module, [*declared, "stages/lib/plotting.py"])
    assert problems == ["train_top: needless stages/lib/plotting.py"]
