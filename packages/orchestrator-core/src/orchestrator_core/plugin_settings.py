"""Plugins' own settings, read from the same places as the core's.

A plugin declares its settings with the :func:`~orchestrator_core.hookspecs.plugin_settings`
hook, returning ``(section, model)``: a section name (lower-case, e.g. ``"dryrun"``) and a
pydantic model class. Its values come from, highest precedence first:

1. ``ORCH_PLUGINS__<SECTION>__<FIELD>`` environment variables (``ORCH_PLUGINS__DRYRUN__TIMEOUT_SECONDS=30``;
   nested models take further ``__<FIELD>`` parts);
2. the ``[plugins.<section>]`` table of the TOML file named by ``ORCH_CONFIG_FILE``;
3. when the model is a pydantic-settings ``BaseSettings``, its own environment, e.g. the
   older names ``ORCH_DRYRUN_TIMEOUT_SECONDS`` of contrib's checks and backends, for every
   field the two above say nothing about;
4. the model's defaults.

The 1. and 2. are merged by the core's :class:`~orchestrator_core.settings.Settings` (its
``plugins`` field, value by value like the councils) and handed to the
:class:`~orchestrator_core.plugins.PluginHost`; this module validates one section against
its model. A value that does not validate is a configuration error
(:class:`PluginSettingsError`): the service refuses to start and says which plugin, which
field and what is wrong, never the value given (it may be a secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator_core.errors import OrchestratorError

SECTION_TABLE = "plugins"
"""The TOML table holding the plugins' sections: ``[plugins.<section>]``."""
ENV_PREFIX = "ORCH_PLUGINS__"
"""The prefix of a plugin setting's variable: ``ORCH_PLUGINS__<SECTION>__<FIELD>``."""


class PluginSettingsError(OrchestratorError):
    """A plugin's settings are invalid; the message names the plugin and each field.

    ``plugin`` and ``problems`` (``(field path, message)`` pairs) say the same for programs."""

    def __init__(self, plugin: str, section: str, problems: list[tuple[str, str]]) -> None:
        self.plugin = plugin
        self.section = section
        self.problems = problems
        where = "; ".join(
            f"{field_name} ({variable_for(section, field_name)}): {message}" if field_name
            else f"[{SECTION_TABLE}.{section}]: {message}"
            for field_name, message in problems
        )
        super().__init__(f"invalid settings of plugin {plugin} ([{SECTION_TABLE}.{section}]): {where}")


def variable_for(section: str, field_path: str) -> str:
    """The environment variable of a field: ``ORCH_PLUGINS__DRYRUN__TIMEOUT_SECONDS``."""
    return ENV_PREFIX + "__".join(part.upper() for part in [section, *field_path.split(".")])


def valid_section_name(section: object) -> bool:
    """A section name can be a TOML key and part of a variable's name: ``[a-z0-9_]``, no ``__``."""
    return (
        isinstance(section, str)
        and bool(section)
        and section == section.lower()
        and "__" not in section
        and all(c.isascii() and (c.isalnum() or c == "_") for c in section)
    )


def validate_section(
    plugin: str, section: str, model: type[BaseModel], values: Mapping[str, Any] | None
) -> BaseModel:
    """``values`` (the merged section from the file and ``ORCH_PLUGINS__*``) validated by
    ``model``; a ``BaseSettings`` model also reads its own environment for fields not given.

    Raises:
      PluginSettingsError: a value does not validate (or the section is not a table).
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise PluginSettingsError(plugin, section, [("", "must be a table of settings")])
    try:
        # A BaseSettings model takes these as init values, which win over its own environment.
        return model(**{str(key): value for key, value in values.items()})
    except ValidationError as exc:
        raise PluginSettingsError(plugin, section, _problems(exc)) from None


def _problems(error: ValidationError) -> list[tuple[str, str]]:
    """Field paths and messages, without the input (pydantic's message quotes it)."""
    return [
        (".".join(str(part) for part in problem["loc"]), problem["msg"])
        for problem in error.errors(include_url=False, include_input=False, include_context=False)
    ]
