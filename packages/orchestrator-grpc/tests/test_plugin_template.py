"""``orchestrator plugin new NAME``: the package it renders installs with pip, its entry point
loads in the service, and its own tests (the conformance kit's) pass; a bad NAME is a usage
error."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from grpc_test_support import HANG_GUARD, orchestrator_command

NAME = "acme-reviewer"
PACKAGE = "acme_reviewer"
USAGE_ERROR = 2


def orchestrator(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [orchestrator_command(), *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=HANG_GUARD * 3, check=False,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("plugins")
    result = orchestrator("plugin", "new", NAME, "--directory", str(directory))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"created plugin {NAME} in {directory / NAME}\n")
    return directory / NAME


def test_the_package_has_a_src_layout_an_entry_point_and_a_core_range(rendered: Path) -> None:
    files = sorted(str(p.relative_to(rendered)) for p in rendered.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        f"src/{PACKAGE}/__init__.py",
        f"src/{PACKAGE}/backend.py",
        f"src/{PACKAGE}/check.py",
        f"src/{PACKAGE}/py.typed",
        f"tests/test_{PACKAGE}.py",
    ]
    project = tomllib.loads((rendered / "pyproject.toml").read_text())["project"]
    assert project["name"] == NAME
    assert project["entry-points"]["orchestrator"] == {NAME: PACKAGE}
    [core] = [d for d in project["dependencies"] if d.startswith("orchestrator-core")]
    assert ">=" in core
    assert ",<" in core
    assert "{{" not in "".join(p.read_text() for p in rendered.rglob("*") if p.is_file())
    readme = (rendered / "README.md").read_text()
    assert f"# {NAME}" in readme
    assert "AgentBackendConformance" in readme


def test_the_rendered_package_passes_its_own_conformance_tests(rendered: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ORCH_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=rendered, env=env,
        capture_output=True, text=True, timeout=HANG_GUARD * 15, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "14 passed" in result.stdout, result.stdout


def test_pip_installs_it_and_the_service_loads_its_entry_point(rendered: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(rendered)],
        capture_output=True, text=True, timeout=HANG_GUARD * 15, check=False,
    )
    assert installed.returncode == 0, installed.stderr
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORCH_")}
    env.update(PYTHONPATH=str(site), ORCH_PLUGINS_ENABLED=NAME)
    listed = orchestrator("plugins", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f'"agents": [\n        "{NAME}"\n      ]' in listed.stdout
    assert f'"checks": [\n        "{NAME}-check"\n      ]' in listed.stdout
    assert '"failed_plugins": []' in listed.stdout


@pytest.mark.parametrize(
    "name",
    ["Acme", "acme_reviewer", "1acme", "acme--reviewer", "-acme", "acme-", "acme reviewer", "acme/../x", "",
     "a" * 61, "json", "asyncio", "class", "orchestrator", "orchestrator-core", "tests"],
)
def test_a_bad_name_is_a_usage_error(name: str, tmp_path: Path) -> None:
    result = orchestrator("plugin", "new", "--directory", str(tmp_path), "--", name)
    assert result.returncode == USAGE_ERROR, result.stderr
    assert "is not a plugin name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "keep.txt").write_text("mine")
    result = orchestrator("plugin", "new", NAME, "--directory", str(tmp_path))
    assert result.returncode == 1
    expected = f"orchestrator: {tmp_path / NAME} exists and is not empty; choose another NAME or --directory\n"
    assert result.stderr == expected
    assert [p.name for p in (tmp_path / NAME).iterdir()] == ["keep.txt"]
