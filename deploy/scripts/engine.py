"""The container engine of this machine: docker or podman, whichever can actually run.

A `docker` command whose daemon is down does not count; `podman` needs no daemon.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from health import show

# Some machines' default ulimits are above their hard limits; explicit ones always start.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
CANDIDATES = ("docker", "podman")
INFO_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Engine:
    name: str
    binary: str

    def command(self, *args: str) -> list[str]:
        return [self.binary, *args]

    def run(self, *args: str, check: bool = True, quiet: bool = False, timeout: float = 900) -> str:
        """Runs the engine; its stdout. Output goes to the console unless ``quiet``."""
        command = self.command(*args)
        if not quiet:
            show(command)
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)
        if check and result.returncode != 0:
            raise EngineError(command, result.returncode, result.stdout + result.stderr)
        return result.stdout

    def stream(self, *args: str, timeout: float = 1800) -> None:
        """Runs the engine with its output shown as it comes (builds)."""
        command = self.command(*args)
        show(command)
        result = subprocess.run(command, check=False, timeout=timeout)
        if result.returncode != 0:
            raise EngineError(command, result.returncode, "(output above)")

    def logs(self, container: str) -> str:
        """The container's output, stdout and stderr together."""
        result = subprocess.run(
            self.command("logs", container), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        return result.stdout

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        data = json.loads(self.run(kind, "inspect", name, quiet=True))
        first: dict[str, Any] = data[0] if isinstance(data, list) else data
        return first

    def has_image(self, image: str) -> bool:
        result = subprocess.run(self.command("image", "inspect", image), capture_output=True, check=False)
        return result.returncode == 0

    def build_args(self) -> list[str]:
        """Podman writes OCI images by default, which drop HEALTHCHECK; the docker format keeps it."""
        return ["--format", "docker", *ULIMITS] if self.name == "podman" else []


class EngineError(Exception):
    def __init__(self, command: Sequence[str], code: int, output: str) -> None:
        super().__init__(f"`{' '.join(command)}` exited with {code}:\n{output.strip()}")
        self.output = output


def find_engine() -> tuple[Engine | None, list[str]]:
    """The first usable engine, and why each unusable one was passed over."""
    reasons: list[str] = []
    for name in CANDIDATES:
        binary = shutil.which(name)
        if binary is None:
            reasons.append(f"{name}: not installed")
            continue
        try:
            result = subprocess.run(
                [binary, "info"], capture_output=True, text=True, check=False, timeout=INFO_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            reasons.append(f"{name}: `{name} info` did not answer within {INFO_TIMEOUT_SECONDS}s")
            continue
        if result.returncode == 0:
            return Engine(name, binary), reasons
        detail = (result.stderr or result.stdout).strip().splitlines()
        reasons.append(f"{name}: `{name} info` failed: {detail[-1] if detail else result.returncode}")
    return None, reasons
