"""A plugin's declared plugin API range (``ORCHESTRATOR_PLUGIN_API``), checked against this
host's :data:`~orchestrator_core.versions.PLUGIN_API_VERSION` when the plugin loads."""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from orchestrator_core.errors import OrchestratorError
from orchestrator_core.hookspecs import PLUGIN_API_ATTRIBUTE, PLUGIN_API_VERSION


class IncompatiblePlugin(OrchestratorError):
    """A plugin's declared plugin API range excludes this host's version."""


def check_plugin_api(plugin: object, host_version: str = PLUGIN_API_VERSION) -> None:
    """Accept ``plugin`` unless its ``ORCHESTRATOR_PLUGIN_API`` range excludes ``host_version``.

    A plugin that declares nothing is accepted. Raises :class:`IncompatiblePlugin` naming both
    versions, or when the declaration is not a PEP 440 specifier set.
    """
    declared = getattr(plugin, PLUGIN_API_ATTRIBUTE, None)
    if declared is None:
        return
    if not isinstance(declared, str):
        raise IncompatiblePlugin(
            f"{PLUGIN_API_ATTRIBUTE} must be a version range such as '>=1.0,<2', not {type(declared).__name__}"
        )
    try:
        supported = SpecifierSet(declared)
    except InvalidSpecifier:
        raise IncompatiblePlugin(
            f"{PLUGIN_API_ATTRIBUTE} {declared!r} is not a version range such as '>=1.0,<2'"
        ) from None
    if not supported.contains(Version(host_version), prereleases=True):
        raise IncompatiblePlugin(
            f"the plugin supports orchestrator plugin API {declared}, this orchestrator provides "
            f"plugin API {host_version}"
        )
