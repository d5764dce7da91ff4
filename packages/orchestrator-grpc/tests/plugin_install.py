"""Test plugins installed for an ``orchestrator`` process the way pip installs a package: a
``.dist-info`` naming their entry points, on the process's ``PYTHONPATH`` beside
``plugin_path/`` (the plugins' modules). No pytest here: the benchmarks use it too."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PLUGIN_PATH = Path(__file__).parent / "plugin_path"


def installed_plugins(
    site: Path, distribution: str, entry_points: Mapping[str, str], *, without: tuple[str, ...] = ("ORCH_",)
) -> dict[str, str]:
    """This process's environment without the variables starting with ``without``, with
    ``distribution`` (version 0.0.1) installed in ``site``: its ``orchestrator`` entry points
    map a plugin's name to its module."""
    dist_info = site / f"{distribution.replace('-', '_')}-0.0.1.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.0.1\n")
    lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[orchestrator]\n{lines}")
    env = {name: value for name, value in os.environ.items() if not name.startswith(without)}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGIN_PATH)])
    return env
