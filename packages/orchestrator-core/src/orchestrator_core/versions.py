"""Installed package versions, looked up on first use: importlib.metadata is slow to import,
and the command line imports the packages on every start."""

from __future__ import annotations


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``; ``0.0.0`` when running from a source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"
