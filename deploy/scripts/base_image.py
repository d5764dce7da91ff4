"""A local Python base image made from Debian's packages, for machines without a registry.

`debootstrap` writes a minimal Debian bookworm (python3 3.11 and its venv module) into a
scratch directory, which is imported as an image and kept: later runs reuse it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from engine import Engine
from health import show

LOCAL_BASE_IMAGE = "localhost/orchestrator-base:python3.11-bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv")


def can_debootstrap() -> str | None:
    """None when a local base can be made here, else why not."""
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed"
    if os.geteuid() != 0:
        return "debootstrap needs root"
    return None


def ensure_local_base(engine: Engine) -> str:
    """The local base image, made first if the engine does not have it yet."""
    if engine.has_image(LOCAL_BASE_IMAGE):
        print(f"base image: {LOCAL_BASE_IMAGE} (cached)")
        return LOCAL_BASE_IMAGE
    problem = can_debootstrap()
    if problem:
        raise RuntimeError(f"cannot make {LOCAL_BASE_IMAGE}: {problem}")
    with tempfile.TemporaryDirectory(prefix="orchestrator-base-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR]
        show(command)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=900)
        show(["tar", "-C", str(rootfs), "-c", ".", "|", *engine.command("import", "-", LOCAL_BASE_IMAGE)])
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            engine.command("import", "--change", 'CMD ["python3"]', "-", LOCAL_BASE_IMAGE),
            stdin=tar.stdout, stdout=subprocess.DEVNULL, check=False,
        )
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise RuntimeError(f"importing the debootstrap root as {LOCAL_BASE_IMAGE} failed")
    print(f"base image: {LOCAL_BASE_IMAGE} (made with debootstrap)")
    return LOCAL_BASE_IMAGE
