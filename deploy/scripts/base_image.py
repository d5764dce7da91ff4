"""A local Python base image made from Debian's packages, for machines without a registry.

`debootstrap` writes a minimal Debian bookworm (python3 3.11 and its venv module) into a
scratch directory; its downloaded packages and package lists are removed, and the rest is
imported as an image and kept: later runs reuse it.

Run on its own (as root; `nox -s base-image` does this) it makes the image and prints its
name, for `--build-arg BASE_IMAGE=...`:

    python3 deploy/scripts/base_image.py [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from engine import Engine, find_engine
from health import show

LOCAL_BASE_IMAGE = "localhost/orchestrator-base:python3.11-bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv")
# What debootstrap leaves that no image needs: the .deb files it installed and apt's lists.
APT_LEFTOVERS = ("var/cache/apt/archives", "var/cache/apt", "var/lib/apt/lists")


def can_debootstrap() -> str | None:
    """None when a local base can be made here, else why not."""
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed"
    if os.geteuid() != 0:
        return "debootstrap needs root"
    return None


def ensure_local_base(engine: Engine, *, rebuild: bool = False) -> str:
    """The local base image, made first if the engine does not have it yet (or ``rebuild``)."""
    if engine.has_image(LOCAL_BASE_IMAGE) and not rebuild:
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
        remove_apt_leftovers(rootfs)
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


def remove_apt_leftovers(rootfs: Path) -> None:
    """Empties apt's caches and lists in ``rootfs``, keeping the directories apt expects."""
    for relative in APT_LEFTOVERS:
        directory = rootfs / relative
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if entry.is_file() or entry.is_symlink():
                entry.unlink()
            elif entry.name not in ("partial", "archives", "auxfiles"):
                shutil.rmtree(entry)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="make the image again even if it exists")
    args = parser.parse_args()
    engine, reasons = find_engine()
    if engine is None:
        print("no container engine can build or run containers here: " + "; ".join(reasons), file=sys.stderr)
        return 1
    try:
        image = ensure_local_base(engine, rebuild=args.rebuild)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"base image FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"build on it with: --build-arg BASE_IMAGE={image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
