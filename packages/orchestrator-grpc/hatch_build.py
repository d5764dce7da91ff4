"""Hatchling build hook: generates the ``orchestrator.v1`` gRPC stubs from the API spec.

The stubs are never committed. They are generated with ``grpc_tools.protoc`` (pinned in
``[build-system].requires``) into ``src/orchestrator/`` as the top-level package
``orchestrator.v1``, so the generated ``from orchestrator.v1 import orchestrator_pb2``
imports as written:

- wheel: generated, then force-included into the wheel (the directory is gitignored);
- editable: generated in place; the editable ``.pth`` already puts ``src/`` on ``sys.path``;
- sdist: nothing is generated; the spec directory is carried along as ``specs/``, so a wheel
  built from the sdist generates the stubs the same way.

The spec directory is ``<package root>/specs`` inside an sdist, ``../../specs`` in the
monorepo.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PROTO_FILE = "orchestrator/v1/orchestrator.proto"
GENERATED_PACKAGE = "orchestrator"
_PACKAGE_DOCSTRINGS = {
    Path(GENERATED_PACKAGE): '"""Generated from specs/orchestrator; do not edit."""\n',
    Path(GENERATED_PACKAGE, "v1"): '"""Generated stubs of the orchestrator.v1 API; do not edit."""\n',
}


class ProtoStubsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        specs = self._specs_dir()
        if self.target_name == "sdist":
            build_data["force_include"][str(specs)] = "specs"
            return
        if self.target_name != "wheel":
            return
        source_root = Path(self.root, "src")
        generate_stubs(specs, source_root)
        if version != "editable":
            build_data["force_include"][str(source_root / GENERATED_PACKAGE)] = GENERATED_PACKAGE

    def clean(self, versions: list[str]) -> None:
        shutil.rmtree(Path(self.root, "src", GENERATED_PACKAGE), ignore_errors=True)

    def _specs_dir(self) -> Path:
        root = Path(self.root)
        candidates = (root / "specs", root.parent.parent / "specs")
        for candidate in candidates:
            if (candidate / PROTO_FILE).is_file():
                return candidate.resolve()
        searched = ", ".join(str(candidate / PROTO_FILE) for candidate in candidates)
        raise FileNotFoundError(f"orchestrator-grpc: API spec not found; looked for {searched}")


def generate_stubs(specs: Path, source_root: Path) -> None:
    """Runs protoc on the spec, writing ``orchestrator/v1/*`` under ``source_root``."""
    from grpc_tools import protoc

    package_dir = source_root / GENERATED_PACKAGE
    shutil.rmtree(package_dir, ignore_errors=True)
    source_root.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    arguments = [
        "grpc_tools.protoc",
        f"-I{specs}",
        f"-I{well_known}",
        f"--python_out={source_root}",
        f"--pyi_out={source_root}",
        f"--grpc_python_out={source_root}",
        str(specs / PROTO_FILE),
    ]
    if protoc.main(arguments) != 0:
        raise RuntimeError(f"orchestrator-grpc: protoc failed on {specs / PROTO_FILE}")
    for relative, docstring in _PACKAGE_DOCSTRINGS.items():
        (source_root / relative / "__init__.py").write_text(docstring, encoding="utf-8")
    (package_dir / "py.typed").write_text("", encoding="utf-8")
