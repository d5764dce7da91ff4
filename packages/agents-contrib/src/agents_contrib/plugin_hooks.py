"""The hooks every plugin of this package declares, made in one place.

Each module here is an entry-point plugin with a settings section: ``plugin_settings`` names
the section and its model, and the register hook builds the plugin's one object from the
validated section. pluggy passes a hookimpl only the arguments it names without defaults,
so the register hook takes ``settings`` as required, and a second, plain function with
``settings=None`` serves callers outside a plugin host (tests, embedders): without settings
the object reads its environment itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from orchestrator_core.hookspecs import SettingsDeclaration, hookimpl

SettingsT = TypeVar("SettingsT", bound=BaseModel)
Register = Callable[[Any], None]
RegisterHook = Callable[[Register, Any], None]
PlainRegister = Callable[..., None]


def settings_hooks(
    section: str, model: type[SettingsT], make: Callable[[SettingsT | None], object], *, hook: str
) -> tuple[Callable[[], SettingsDeclaration], RegisterHook, PlainRegister]:
    """``(plugin_settings, <hook>_configured, <hook>)`` for a plugin whose ``hook``
    (``register_agents`` or ``register_checks``) registers ``make(settings)``."""
    prefix = model.model_config.get("env_prefix", "")

    def plugin_settings() -> SettingsDeclaration:
        return (section, model)

    def configured(register: Register, settings: SettingsT | None) -> None:
        register(make(settings))

    def plain(register: Register, settings: SettingsT | None = None) -> None:
        configured(register, settings)

    plugin_settings.__doc__ = (f"Settings section ``{section}``: ``[plugins.{section}]`` and "
                               f"``ORCH_PLUGINS__{section.upper()}__*``, over the older ``{prefix}*``.")
    configured.__doc__ = f"Register the ``{section}`` plugin's object with its validated settings section."
    plain.__doc__ = "The same outside a plugin host; without settings they are read from the environment."
    configured.__name__ = f"{hook}_configured"
    plain.__name__ = hook
    return hookimpl(plugin_settings), hookimpl(specname=hook)(configured), plain
