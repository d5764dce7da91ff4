"""deploy/README.md's Kubernetes steps run as written from the repository root: the paths
they name exist, and the overlay they write renders with the image it names."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from deploy_checks import (
    ROOT,
    image_problems,
    one,
    pod_spec,
    project_version,
)
from deploy_kustomize import K8S, RENDERERS

# deploy/README.md's deploy steps, run as written from the repository root.

README = ROOT / "deploy" / "README.md"


def _kubernetes_shell_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Kubernetes"):]
    return re.findall(r"^ *```sh\n(.*?)^ *```", section, re.MULTILINE | re.DOTALL)


def _heredocs(block: str) -> list[tuple[str, str]]:
    """``(path, content)`` of every ``cat > PATH <<'EOF'`` in a shell block."""
    return re.findall(r"cat > (\S+) <<'EOF'\n(.*?)^EOF$", block, re.MULTILINE | re.DOTALL)


def test_the_readme_kubernetes_steps_name_paths_that_exist() -> None:
    blocks = _kubernetes_shell_blocks()
    assert blocks
    created = {Path(path).parent.as_posix() for block in blocks for path, _ in _heredocs(block)}
    created |= {path for block in blocks for path, _ in _heredocs(block)}
    assert created, "the deploy steps write no overlay of the operator's own"
    named = {token for line in _command_lines(blocks) for token in shlex.split(line) if token.startswith("deploy/")}
    assert "deploy/k8s/overlays/mine" in named
    # What the written overlay builds on exists where it is written.
    for path, content in (doc for block in blocks for doc in _heredocs(block)):
        for entry in [*yaml.safe_load(content)["resources"], *yaml.safe_load(content).get("components", [])]:
            assert (ROOT / path).parent.joinpath(entry).resolve().is_dir(), f"{path}: {entry} does not exist"
    missing = sorted(path for path in named if path.rstrip("/") not in created and not (ROOT / path).exists())
    assert missing == []
    # Every command runs from the repository root: no `cd`, no standalone kustomize.
    assert not [c for c in _command_lines(blocks) if c.startswith(("cd ", "kustomize "))]


def _command_lines(blocks: list[str]) -> list[str]:
    """The shell commands of the blocks: continuations joined, here-documents and comments dropped."""
    lines: list[str] = []
    for block in blocks:
        text = re.sub(r"<<'EOF'\n.*?^EOF$", "", block, flags=re.MULTILINE | re.DOTALL).replace("\\\n", " ")
        lines += [line.split(" #")[0].strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [line for line in lines if line]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_readme_overlay_renders_with_its_image(tmp_path: Path, renderer: str) -> None:
    """The operator's overlay of the README, written where it says, sets the image it names."""
    (written,) = [doc for block in _kubernetes_shell_blocks() for doc in _heredocs(block)]
    path, content = written
    shutil.copytree(K8S, tmp_path / "deploy" / "k8s")
    target = tmp_path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    objects = RENDERERS[renderer](target.parent)
    (image,) = {c["image"] for c in pod_spec(one(objects, "Deployment"))["containers"]}
    assert image == f"registry.example.com/orchestrator:{project_version()}"
    assert image_problems(one(objects, "Deployment"), project_version()) == []
