"""Lay out a dry-run directory: the task's tests, and the proposal's code under usable names.

A Python artifact keeps the file name the proposal gave it. An unnamed one is named after
the module the task's tests import and nothing else provides (``from calc import add``
makes it ``calc.py``), choosing the artifact that defines the imported names; the others are
joined, in order, into ``solution.py``. A proposal may not bring pytest configuration
(``conftest.py``, ``pytest.ini`` …) nor overwrite a test, and only the task's own tests
are collected, so it cannot add tests of its own to the count.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from agents_contrib.artifacts import Artifact
from orchestrator_core.models import TaskTest

RESERVED_NAMES = frozenset({"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml",
                            "sitecustomize.py", "usercustomize.py"})
IMPORT_TEST_NAME = "test_proposal_imports.py"
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

IMPORT_TEST = '''\
"""Written by the dry-run check: the task ships no tests, so each module must compile and import."""
import importlib.util
import pathlib

import pytest

MODULES = {modules!r}


@pytest.mark.parametrize("path", MODULES)
def test_module_imports(path):
    source = pathlib.Path(path).read_text(encoding="utf-8")
    compile(source, path, "exec")
    spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
'''


@dataclass
class Workspace:
    """What was written where, and what pytest must run."""

    files: dict[str, str] = field(default_factory=dict)
    tests: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated_import_test: bool = False

    def write(self, root: Path) -> None:
        """Write every file under ``root`` (blocking)."""
        for relative, content in self.files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")


def safe_relative_path(name: str) -> str | None:
    """``name`` as a relative POSIX path inside the directory, or None if it would leave it."""
    path = PurePosixPath(name.strip().replace("\\", "/"))
    if not name.strip() or path.is_absolute() or not path.parts:
        return None
    if any(part in ("..", ".") or not _SAFE_PART.match(part) for part in path.parts):
        return None
    return str(path)


def plan_workspace(tests: Sequence[TaskTest], artifacts: Sequence[Artifact]) -> Workspace:
    workspace = Workspace()
    for test in tests:
        relative = safe_relative_path(test.path)
        if relative is None:
            workspace.notes.append(f"task test {test.path!r} skipped: not a relative path inside the directory")
            continue
        workspace.files[relative] = test.content
        workspace.tests.append(relative)
    unnamed: list[Artifact] = []
    for artifact in artifacts:
        if artifact.filename:
            _add_named(workspace, artifact)
        elif artifact.language == "python":
            unnamed.append(artifact)
    _name_unnamed(workspace, unnamed, tests)
    if not workspace.tests:
        modules = sorted(path for path in workspace.files if path.endswith(".py"))
        if modules:
            workspace.files[IMPORT_TEST_NAME] = IMPORT_TEST.format(modules=modules)
            workspace.tests.append(IMPORT_TEST_NAME)
            workspace.generated_import_test = True
    return workspace


def _add_named(workspace: Workspace, artifact: Artifact) -> None:
    relative = safe_relative_path(artifact.filename)
    if relative is None:
        workspace.notes.append(f"{artifact.label} not written: unsafe file name")
    elif PurePosixPath(relative).name in RESERVED_NAMES:
        workspace.notes.append(f"{artifact.label} not written: a proposal may not configure pytest")
    elif relative in workspace.files:
        workspace.notes.append(f"{artifact.label} not written: {relative} is already taken")
    else:
        workspace.files[relative] = artifact.content


def _name_unnamed(workspace: Workspace, unnamed: list[Artifact], tests: Sequence[TaskTest]) -> None:
    provided = {PurePosixPath(path).with_suffix("").parts[0] for path in workspace.files}
    wanted = [(module, names) for module, names in imported_modules(tests).items()
              if module not in provided and not _importable(module)]
    remaining = list(unnamed)
    for module, names in wanted:
        if not remaining:
            break
        chosen = max(remaining, key=lambda a: (len(names & defined_names(a.content)), -a.index))
        remaining.remove(chosen)
        workspace.files[f"{module}.py"] = chosen.content
        workspace.notes.append(f"{chosen.label} written as {module}.py (imported by the tests)")
    if remaining:
        # Unnamed blocks the tests do not ask for read as one program (code, then its usage).
        stem = "solution"
        while f"{stem}.py" in workspace.files:
            stem += "_"
        workspace.files[f"{stem}.py"] = "\n\n".join(a.content for a in remaining)
        labels = ", ".join(a.label for a in remaining)
        workspace.notes.append(f"{labels} written as {stem}.py")


def imported_modules(tests: Sequence[TaskTest]) -> dict[str, set[str]]:
    """Top-level modules the tests import, in order, each with the names taken from it."""
    modules: dict[str, set[str]] = {}
    for test in tests:
        try:
            tree = ast.parse(test.content)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    modules.setdefault(alias.name.split(".")[0], set())
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.setdefault(node.module.split(".")[0], set()).update(a.name for a in node.names)
    return modules


def defined_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _importable(module: str) -> bool:
    """In the standard library or installed; finding a top-level spec runs no module code."""
    if module in sys.stdlib_module_names:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
