"""Settings of the checks, from the environment (one prefix per check) like the service's own.

The dry-run check's are its plugin settings section (:mod:`orchestrator_core.plugin_settings`):
``[plugins.dryrun]`` in the file named by ``ORCH_CONFIG_FILE`` and ``ORCH_PLUGINS__DRYRUN__<FIELD>``,
which win over the older ``ORCH_DRYRUN_<FIELD>``; policy and lint read ``ORCH_POLICY_*`` and
``ORCH_LINT_*`` only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator_core.settings import split_names

DEFAULT_YAMLLINT_CONFIG = """\
extends: default
rules:
  document-start: disable
  line-length: {max: 120}
  truthy: {check-keys: false}
"""


class PolicySettings(BaseSettings):
    """``ORCH_POLICY_*``: built-in rules and operator policies in Rego."""

    model_config = SettingsConfigDict(env_prefix="ORCH_POLICY_", extra="ignore")

    dir: Path | None = None
    """Directory of ``*.rego`` files (searched recursively); unset runs the built-in rules only."""
    max_artifact_bytes: int = Field(default=256 * 1024, ge=1)
    """An artifact larger than this is a violation (SIZE001)."""
    max_proposal_bytes: int = Field(default=1024 * 1024, ge=1)
    """A proposal larger than this is a violation (SIZE002)."""
    disabled_rules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Built-in rule ids to skip, e.g. ``["PY005"]``."""
    violation_penalty: float = Field(default=0.25, gt=0, le=1)
    """Score lost per violation; the score is ``max(0, 1 - penalty * violations)``."""

    @field_validator("disabled_rules", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return split_names(value)


class LintSettings(BaseSettings):
    """``ORCH_LINT_*``: ruff, yamllint and Kubernetes schema validation."""

    model_config = SettingsConfigDict(env_prefix="ORCH_LINT_", extra="ignore")

    ruff_select: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["E", "F", "W", "B", "UP"])
    """Ruff rule families; the proposal's own ruff configuration is never read."""
    @field_validator("ruff_select", mode="before")
    @classmethod
    def _families(cls, value: Any) -> Any:
        return split_names(value)

    ruff_line_length: int = Field(default=120, ge=40)
    yamllint_config: str = DEFAULT_YAMLLINT_CONFIG
    kubernetes_version: str = ""
    """Kubernetes schema version manifests are validated against; empty for the newest bundled."""
    kubernetes_strict: bool = True
    """Reject fields the schema does not know (typos in manifests)."""
    timeout_seconds: float = Field(default=30.0, gt=0)


class DryRunSettings(BaseSettings):
    """``[plugins.dryrun]``, ``ORCH_PLUGINS__DRYRUN__*`` over ``ORCH_DRYRUN_*``: the sandbox that
    runs the task's tests against a proposal."""

    model_config = SettingsConfigDict(env_prefix="ORCH_DRYRUN_", extra="ignore")

    isolation: Literal["auto", "bwrap", "unshare", "none"] = "auto"
    """``auto`` takes the strongest isolation that works on the machine, probed at startup."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Wall-clock bound of one dry-run; the whole process group is killed past it."""
    cpu_seconds: int = Field(default=30, ge=1)
    memory_bytes: int = Field(default=1024 * 1024 * 1024, ge=64 * 1024 * 1024)
    """Address-space bound of each sandboxed process (RLIMIT_AS)."""
    file_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    """Largest file a sandboxed process may write (RLIMIT_FSIZE)."""
    open_files: int = Field(default=256, ge=32)
    processes: int = Field(default=64, ge=4)
    """RLIMIT_NPROC of each run's unprivileged user (a uid of its own, see ``sandbox_uid``)."""
    sandbox_uid: int = Field(default=70000, ge=1, lt=2**31)
    """First of the unprivileged uids the sandbox runs as when the service runs as root: each
    run takes one of its own (:mod:`.sandbox_uids`), so that RLIMIT_NPROC, which counts every
    process of a uid on the machine, bounds that run alone. The default range lies above login
    accounts and ``nobody`` (65534) and below the subordinate ranges of user namespaces (100000);
    no other program may use it."""
    sandbox_uid_count: int = Field(default=0, ge=0)
    """How many consecutive uids from ``sandbox_uid`` the runs take; 0 (the default) means
    ``concurrency``. Replicas sharing the work root may share the range (a lock per uid)."""
    output_bytes: int = Field(default=16 * 1024, ge=1024)
    """Output kept for the diagnostics (head of the run's stdout and stderr)."""
    max_output_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """A run that prints more than this is killed: a flood, not a test report."""
    concurrency: int = Field(default=2, ge=1)
    """Dry-runs this process runs at once, at most: the default size of the uid pool. The check
    itself does not bound them; its caller does (the engine, by ``ORCH_HEAVY_CHECK_CONCURRENCY``,
    which should not exceed this)."""
    work_root: Path | None = None
    """Where sandbox directories are created; the system's temporary directory by default."""
    failure_messages: int = Field(default=5, ge=0)
    """Failing tests whose message goes into the diagnostics."""
    pytest_autoload: bool = False
    """Load every pytest plugin installed beside the service (about 1 s more per run)."""
    pytest_plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Plugin modules to load explicitly when autoload is off, e.g. ``pytest_asyncio.plugin``."""
    conduct_penalty: float = Field(default=0.5, gt=0, le=1)
    """Fraction of the score lost per conduct finding (CONDUCT001 to CONDUCT005): the score is
    ``tests score * max(0, 1 - penalty * findings)``; any finding also fails the check."""
    conduct_veto: bool = False
    """A conduct finding scores 0 (and fails the check) instead of costing the penalty."""

    @field_validator("pytest_plugins", mode="before")
    @classmethod
    def _plugins(cls, value: Any) -> Any:
        return split_names(value)

    @model_validator(mode="after")
    def _uid_range(self) -> DryRunSettings:
        if not self.sandbox_uid_count:
            self.sandbox_uid_count = self.concurrency
        if self.sandbox_uid_count < self.concurrency:
            raise ValueError(f"sandbox_uid_count ({self.sandbox_uid_count}) must be at least concurrency "
                             f"({self.concurrency}): each concurrent run needs a uid of its own")
        if self.sandbox_uid + self.sandbox_uid_count > 2**31:
            raise ValueError("sandbox_uid + sandbox_uid_count must stay below 2**31")
        return self
