"""Invariants of the monorepo itself."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator-core", "orchestrator-grpc", "agents-contrib")


def project(name: str) -> dict[str, object]:
    return tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())["project"]


def test_the_three_packages_share_one_version_and_pin_the_core_to_it() -> None:
    versions = {name: project(name)["version"] for name in PACKAGES}
    assert len(set(versions.values())) == 1, versions
    [version] = set(versions.values())
    for name in ("orchestrator-grpc", "agents-contrib"):
        dependencies = [str(d) for d in project(name)["dependencies"]]  # type: ignore[attr-defined]
        pins = [d for d in dependencies if d.startswith("orchestrator-core")]
        assert pins, name
        assert all(pin.endswith(f"=={version}") for pin in pins), (name, pins)


def test_every_package_has_a_src_layout_and_its_own_tests() -> None:
    for name in PACKAGES:
        package = ROOT / "packages" / name
        module = name.replace("-", "_")
        assert (package / "src" / module / "__init__.py").is_file()
        assert any((package / "tests").glob("test_*.py"))


def test_no_generated_stubs_are_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert tracked, "not a git checkout"
    assert [path for path in tracked if path.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))] == []
