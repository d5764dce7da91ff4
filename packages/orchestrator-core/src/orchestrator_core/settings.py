"""Service settings: environment variables prefixed ``ORCH_``, over an optional TOML file.

The TOML file is named by ``ORCH_CONFIG_FILE``; environment variables win over it, value
by value: ``ORCH_COUNCILS__DEV__AGENTS=5`` changes the DEV council's size and keeps the
backend and options the file gives it. Nested values use ``__`` in the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from orchestrator_core.models import KNOWN_ROLES

CONFIG_FILE_ENV = "ORCH_CONFIG_FILE"
DEFAULT_CHECK_WEIGHTS = {"policy": 1.0, "lint": 1.0, "dryrun": 2.0}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_BACKEND = "embedded"
"""The backend of a council that names none: the model shipped with agents-contrib, run in process."""


class CouncilSettings(BaseModel):
    """One role's council: which backend builds its agents, how many, with which options."""

    enabled: bool = True
    """False removes the council, e.g. one of the known roles' default councils."""
    backend: str = ""
    """The agent backend; empty means the service's ``default_backend``."""
    agents: int = Field(default=3, ge=1, le=64)
    options: dict[str, Any] = Field(default_factory=dict)
    """Options every agent of the council gets (model, temperature, base_url, ...)."""
    agent_options: list[dict[str, Any]] = Field(default_factory=list)
    """Per-agent overrides, by position in the council (e.g. a different model for one)."""

    def options_for(self, index: int) -> dict[str, Any]:
        merged = dict(self.options)
        if index < len(self.agent_options):
            merged.update(self.agent_options[index])
        return merged


def _default_councils() -> dict[str, CouncilSettings]:
    return {role: CouncilSettings() for role in KNOWN_ROLES}


def split_names(value: Any) -> Any:
    """``"A, B"`` from the environment becomes ``["A", "B"]``; the one reading of a list of
    names, shared by the checks' settings."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ORCH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # Serving
    host: str = "127.0.0.1"
    port: int = Field(default=50055, ge=0, le=65535)
    grace_period_seconds: float = Field(default=10.0, ge=0)
    drain_delay_seconds: float = Field(default=0.0, ge=0)
    """On SIGTERM, how long the server keeps its port open while health says NOT_SERVING and
    new calls are refused (UNAVAILABLE), so probes and load balancers see the drain before the
    port closes; the grace period for in-flight calls starts after it."""
    max_concurrent_deliberations: int = Field(default=64, ge=1)
    log_level: str = "INFO"
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    """Largest gRPC message the server receives or sends (RESOURCE_EXHAUSTED beyond it)."""
    health_refresh_seconds: float = Field(default=1.0, gt=0)
    """How often each council's health status is refreshed from its circuit breaker."""
    tls_cert_file: Path | None = None
    """PEM certificate chain of the server; with ``tls_key_file`` the server speaks TLS only."""
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    """PEM CA bundle of client certificates; set, every client must present one (mutual TLS)."""
    auth_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Bearer tokens accepted by the server (comma-separated in the environment)."""
    auth_tokens_file: Path | None = None
    """A file of bearer tokens, one a line ('#' comments); with ``auth_tokens`` they add up."""

    # Plugins
    plugins_strict: bool = False
    plugins_enabled: Annotated[list[str] | None, NoDecode] = None
    """Allow list of plugin names; unset means every installed plugin."""
    plugins_disabled: Annotated[list[str], NoDecode] = Field(default_factory=list)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Plugins' own settings by section: ``[plugins.<section>]`` in the file,
    ``ORCH_PLUGINS__<SECTION>__<FIELD>`` in the environment (these win, value by value); each
    plugin validates its section (:mod:`orchestrator_core.plugin_settings`)."""
    plugin_lifecycle_timeout_seconds: float = Field(default=10.0, gt=0)
    """Bound of each plugin's ``orchestrator_startup``/``orchestrator_shutdown`` hook and each
    backend's ``aclose()``."""

    # Councils and deliberation
    default_backend: str = Field(default=DEFAULT_BACKEND, min_length=1)
    """The backend of every council that names none (the default councils included)."""
    councils: dict[str, CouncilSettings] = Field(default_factory=_default_councils)
    default_rounds: int = Field(default=1, ge=0)
    max_rounds: int = Field(default=5, ge=0)
    max_agents: int = Field(default=8, ge=1)
    quorum: int = Field(default=2, ge=1)
    """Fewest agents a council may fall to before the deliberation fails."""
    agent_timeout_seconds: float = Field(default=180.0, gt=0)
    deliberation_timeout_seconds: float = Field(default=900.0, gt=0)
    max_task_chars: int = Field(default=200_000, ge=1)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures of a backend endpoint (unreachable, timed out) that open its circuit."""
    endpoint_probe_seconds: float = Field(default=60.0, ge=0)
    """How often each council's endpoint is probed (at startup, then at this interval); 0: never."""
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    """How long an open circuit fails calls fast before letting a trial call through."""

    # Checks, scoring and selection
    check_timeout_seconds: float = Field(default=120.0, gt=0)
    heavy_check_concurrency: int = Field(default=2, ge=1)
    check_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_CHECK_WEIGHTS))
    """Weights by check kind, laid over ``DEFAULT_CHECK_WEIGHTS`` (a kind named keeps the others)."""
    default_check_weight: float = Field(default=1.0, ge=0)
    """Weight of a check whose kind ``check_weights`` does not name."""
    policy_veto: bool = True
    """A failed policy check scores the whole proposal 0."""
    selector_role: str = "ARCHITECT"
    """The council whose first agent chooses an orchestration's winner; empty for top score."""
    selection_top_k: int = Field(default=3, ge=1)

    # Records
    database_path: Path = Path("orchestrator.sqlite3")
    """The SQLite file of deliberation records, unless ``database_url`` names a database."""
    database_url: SecretStr | None = None
    """``postgresql://user:password@host:5432/db`` for records shared by replicas, or
    ``sqlite:///path``; unset means the SQLite file ``database_path``."""
    database_pool_size: int = Field(default=10, ge=1)
    """PostgreSQL connections per server process, all opened at startup. A record write holds
    one for a statement or two, so 10 serve a burst of hundreds of deliberations (200 at
    once: p99 the same with 10, 20 or 50); every process of every replica holds its own, and
    together they must stay under the server's ``max_connections`` (100 by default)."""
    database_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    record_heartbeat_seconds: float = Field(default=10.0, gt=0)
    """How often a replica renews its lease and interrupts the records of dead replicas."""
    record_lease_seconds: float = Field(default=30.0, gt=0)
    """A replica silent this long is dead: its running records are marked interrupted."""
    record_retention_days: float = Field(default=0.0, ge=0)
    """Finished records older than this are deleted; 0 keeps them for ever."""
    record_retention_interval_seconds: float = Field(default=3600.0, gt=0)

    # Work queue
    nats_url: SecretStr | None = None
    """``nats://user:password@host:4222`` (comma-separated for a cluster): submitted
    deliberations go through NATS JetStream, run by any worker sharing the record store; unset
    means the in-process queue. May carry credentials: never logged unredacted."""
    queue_workers: int = Field(default=1, ge=0)
    """Deliberations ``serve`` runs from the queue at once; 0 makes a pure front (``orchestrator
    worker`` processes run them). A worker runs this many at once too, at least one."""
    queue_ack_wait_seconds: float = Field(default=30.0, gt=0)
    """A worker silent this long (no in-progress ack) has lost its delivery: it is delivered again."""
    queue_max_deliver: int = Field(default=5, ge=1)
    """Deliveries of one deliberation at most; past them its record fails (WorkerLost)."""

    # Processes
    processes: int = Field(default=1, ge=1)
    """``serve`` runs this many server processes, each with its own event loop, sharing the port
    (``SO_REUSEPORT``) and the record store; the SQLite file is then shared as PostgreSQL is
    (each process holds a lease, none interrupts another's records)."""

    # Event-loop watchdog
    loop_stall_seconds: float = Field(default=0.5, ge=0)
    """The event loop answering its watchdog this many seconds late is a stall: logged with the
    plugin call that ran and its stack, and counted (GetStatus); 0 turns the watchdog off."""

    # Observability
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve Prometheus metrics over HTTP on this port (``/metrics``, bound to ``host``); unset
    serves none, 0 picks a free port."""
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per log line, with the deliberation id and, when tracing is on,
    the trace and span ids."""
    trace_content: bool = False
    """Put the task's text and each reply on the agent calls' trace spans. Off: spans carry ids,
    models, outcomes and token counts only (tracing itself is set by the ``OTEL_*`` variables)."""
    latency_window: int = Field(default=1000, ge=1)
    """How many recent deliberations per role the latency percentiles of GetStatus cover."""

    @field_validator("plugins_enabled", "plugins_disabled", "auth_tokens", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return split_names(value)

    @field_validator("councils", mode="after")
    @classmethod
    def _with_default_councils(cls, value: dict[str, CouncilSettings]) -> dict[str, CouncilSettings]:
        """Configured councils are laid over a default council for every known role."""
        councils = _default_councils()
        councils.update({role.upper(): council for role, council in value.items()})
        return {role: council for role, council in councils.items() if council.enabled}

    @field_validator("log_level", mode="after")
    @classmethod
    def _a_logging_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("check_weights", mode="after")
    @classmethod
    def _over_default_weights(cls, value: dict[str, float]) -> dict[str, float]:
        return {**DEFAULT_CHECK_WEIGHTS, **value}

    @model_validator(mode="after")
    def _councils_name_a_backend(self) -> Settings:
        for council in self.councils.values():
            if not council.backend:
                council.backend = self.default_backend
        return self

    @model_validator(mode="after")
    def _lease_outlives_heartbeat(self) -> Settings:
        if self.record_lease_seconds <= self.record_heartbeat_seconds:
            raise ValueError(
                f"record_lease_seconds ({self.record_lease_seconds:g}) must exceed "
                f"record_heartbeat_seconds ({self.record_heartbeat_seconds:g}), or live replicas look dead"
            )
        return self

    @model_validator(mode="after")
    def _tls_files_pair_up(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "tls_cert_file and tls_key_file must be set together (ORCH_TLS_CERT_FILE, ORCH_TLS_KEY_FILE)"
            )
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file too")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            sources.append(ConfigFileSource(settings_cls, Path(config_file)))
        # pydantic-settings deep-merges the sources' values, but the environment's keys arrive
        # lower-cased (``dev``) and the file's as written (``DEV``): without one spelling of a
        # role, the two would be two councils and the later one would replace the other whole.
        return tuple(_CouncilRolesUpperCased(source) for source in sources)


class SettingsFileError(Exception):
    """The TOML file named by ``ORCH_CONFIG_FILE`` is missing, unreadable or not TOML."""


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file; a file named but missing is an error, not an empty file."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise SettingsFileError(
            f"{CONFIG_FILE_ENV} {path} cannot be read: {exc.strerror or exc}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsFileError(f"{CONFIG_FILE_ENV} {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsFileError(f"{CONFIG_FILE_ENV} {path} is not UTF-8 text: {exc.reason}") from None


class ConfigFileSource(PydanticBaseSettingsSource):
    """The TOML file named by ``ORCH_CONFIG_FILE``, read once when the settings are built."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._values = read_config_file(path)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class _CouncilRolesUpperCased(PydanticBaseSettingsSource):
    """Another source's values with the ``councils`` table keyed by upper-case role (and the
    ``plugins`` table by lower-case section)."""

    def __init__(self, source: PydanticBaseSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self._source = source

    def _set_current_state(self, state: dict[str, Any]) -> None:
        self._source._set_current_state(state)

    def _set_settings_sources_data(self, states: dict[str, dict[str, Any]]) -> None:
        self._source._set_settings_sources_data(states)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = self._source()
        plugins = values.get("plugins")
        if isinstance(plugins, dict):
            # Sections likewise: one spelling (lower case) for the file's and the environment's.
            by_section: dict[Any, Any] = {}
            for section, table in plugins.items():
                key = section.lower() if isinstance(section, str) else section
                earlier = by_section.get(key)
                if isinstance(earlier, dict) and isinstance(table, dict):
                    table = _merged(earlier, table)
                by_section[key] = table
            values = {**values, "plugins": by_section}
        councils = values.get("councils")
        if not isinstance(councils, dict):
            return values
        by_role: dict[str, Any] = {}
        for role, council in councils.items():
            key = role.upper() if isinstance(role, str) else role
            earlier = by_role.get(key)
            if isinstance(earlier, dict) and isinstance(council, dict):
                council = _merged(earlier, council)
            by_role[key] = council
        return {**values, "councils": by_role}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._source!r})"


def _merged(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid over ``under`` value by value, nested tables merged the same way."""
    merged = dict(under)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged
