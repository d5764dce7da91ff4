"""Installed package versions, looked up on first use: importlib.metadata is slow to import,
and the command line imports the packages on every start."""

from __future__ import annotations

PLUGIN_API_VERSION = "1.0"
"""The version of the plugin contract (:mod:`orchestrator_core.hookspecs`), ``MAJOR.MINOR``.

A minor version only adds: a hook, an optional member of a registered object, an argument a
hookimpl may leave out, a setting. A major version may remove or change any of them. A plugin
declares the versions it supports as a PEP 440 range in its module attribute
``ORCHESTRATOR_PLUGIN_API``, e.g. ``">=1.0,<2"``: the lowest minor version whose additions it
uses, up to (not including) the next major version.
"""


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``; ``0.0.0`` when running from a source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"
