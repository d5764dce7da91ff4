"""Builds the container image with docker or podman and checks it running, end to end.

1. builds the production image (`runtime`) and the `test` image (plus the sample plugin);
2. checks the production image: USER 1000, only the gRPC port exposed, the version and
   revision labels, a HEALTHCHECK running `orchestrator health`, no test plugin installed,
   the data directory writable by an arbitrary UID in group 0;
3. runs the test image as Kubernetes would: read-only root, writable /tmp and data volume
   only; waits for SERVING through `orchestrator health` on the published port; runs the
   image's own HEALTHCHECK; runs a deliberation with the sample plugin's council and one
   on the embedded model the image carries;
4. checks tini is PID 1, the server runs as UID/GID 1000 and cannot write its root
   filesystem, and that it stops with exit code 0 on SIGTERM;
5. removes every image it built (both tags and the untagged intermediate stages), unless
   `--keep`; a base image made with debootstrap stays, as a cache.

With no engine that can build or run containers it says so and exits 0, or 1 when asked
to `--require-engine`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

from base_image import can_debootstrap, ensure_local_base
from engine import ULIMITS, Engine, EngineError, find_engine
from health import CheckFailed, NotServing, health, require, show, wait_for_serving

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
GRPC_PORT = 50055
SERVICE_NAME = "orchestrator.v1.OrchestratorService"
IMAGE = "localhost/orchestrator"
START_SECONDS = 90.0
COUNCIL_SIZE = 3
EMBEDDED_MAX_TOKENS = 64


def main() -> int:
    args = _parser().parse_args()
    engine, reasons = find_engine()
    if engine is None:
        return _no_engine("no container engine can build or run containers here: " + "; ".join(reasons), args)
    print(f"container engine: {engine.name} ({engine.binary})")
    version = args.version or _project_version()
    before: set[str] = set()
    # Read once: the commit may move while the build runs.
    labels = _label_args()
    try:
        base = _base_image(engine, args)
        before = _image_ids(engine)
        production, test = _build(engine, base, version, labels, args)
    except (EngineError, RuntimeError) as exc:
        _remove_built(engine, before, args)
        if base_missing := _missing_public_base(engine, args):
            return _no_engine(f"{engine.name} cannot build the image here: {base_missing}\n{exc}", args)
        print(f"container check FAILED: {exc}", file=sys.stderr)
        return 1
    try:
        check_image(engine, production, version, labels.get("REVISION", ""))
        check_container(engine, test, args.orchestrator)
    except (CheckFailed, NotServing, EngineError) as exc:
        print(f"container check FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        _remove_built(engine, before, args)
    print(f"container check passed: {production} (and {test}) built and ran with {engine.name}")
    return 0


def _image_ids(engine: Engine) -> set[str]:
    """Every image the engine holds, intermediate ones included."""
    return set(engine.run("images", "--all", "--quiet", "--no-trunc", quiet=True).split())


def _remove_built(engine: Engine, before: set[str], args: argparse.Namespace) -> None:
    """Removes the images that appeared since ``before`` (what this check built), unless --keep."""
    if not before:
        return
    built = sorted(_image_ids(engine) - before)
    if args.keep:
        print(f"kept the {len(built)} image(s) built (--keep): {IMAGE}:{args.version or _project_version()} "
              "and its -test tag")
        return
    if built:
        engine.run("rmi", "--force", *built, check=False, quiet=True)
    left = _image_ids(engine) - before
    print(f"removed the {len(built) - len(left)} image(s) this check built" +
          (f"; could not remove {sorted(left)}" if left else ""))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require-engine", action="store_true", help="fail when no engine can build or run")
    parser.add_argument("--version", help="image version (default: the packages' version)")
    parser.add_argument("--orchestrator", default="orchestrator", help="the `orchestrator` client command")
    parser.add_argument("--keep", action="store_true", help="keep the images built (default: remove them)")
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--base-image", help="BASE_IMAGE build argument (default: the Dockerfile's)")
    base.add_argument("--local-base", action="store_true", help="make (once) and use a debootstrap base image")
    base.add_argument("--public-base", action="store_true", help="use the Dockerfile's public base image")
    parser.add_argument(
        "--pip-ca", default=os.environ.get("PIP_CERT"),
        help="CA bundle for pip in the build, for TLS-intercepting proxies (default: $PIP_CERT)",
    )
    return parser


def _no_engine(message: str, args: argparse.Namespace) -> int:
    print(message, file=sys.stderr)
    if args.require_engine:
        print("container check FAILED: an engine is required (--require-engine)", file=sys.stderr)
        return 1
    print("container check SKIPPED: nothing was built or run (pass --require-engine to make this fail)")
    return 0


def _project_version() -> str:
    pyproject = ROOT / "packages" / "orchestrator-core" / "pyproject.toml"
    version: str = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    return version


def _default_base() -> str:
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.partition("=")[2].strip()
    raise RuntimeError(f"{DOCKERFILE} declares no default BASE_IMAGE")


def _base_image(engine: Engine, args: argparse.Namespace) -> str | None:
    """The BASE_IMAGE to build on; None for the Dockerfile's default."""
    if args.base_image:
        return str(args.base_image)
    if args.local_base:
        return ensure_local_base(engine)
    public = _default_base()
    if args.public_base or engine.has_image(public) or can_debootstrap() is not None:
        return None
    print(f"{public} is not present locally and this machine can make a base image: using debootstrap "
          "(pass --public-base to pull the public image instead)")
    return ensure_local_base(engine)


def _missing_public_base(engine: Engine, args: argparse.Namespace) -> str | None:
    if args.base_image or args.local_base:
        return None
    public = _default_base()
    if engine.has_image(public):
        return None
    return f"the base image {public} could not be obtained (no registry?); pass --base-image IMAGE or --local-base"


def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def _label_args() -> dict[str, str]:
    """The OCI labels' build arguments: the commit, its time (reproducible, unlike the
    build's), the remote; those git cannot tell are left out."""
    values = {"REVISION": _git("rev-parse", "HEAD"), "CREATED": _git("log", "-1", "--format=%cI"),
              "SOURCE": _git("remote", "get-url", "origin")}
    return {arg: value for arg, value in values.items() if value}


def _build(
    engine: Engine, base: str | None, version: str, labels: dict[str, str], args: argparse.Namespace
) -> tuple[str, str]:
    common = [*engine.build_args(), "-f", str(DOCKERFILE), "--build-arg", f"VERSION={version}"]
    for arg, value in labels.items():
        common += ["--build-arg", f"{arg}={value}"]
    if base:
        common += ["--build-arg", f"BASE_IMAGE={base}"]
    if args.pip_ca and Path(args.pip_ca).is_file():
        common += ["--secret", f"id=pip-ca,src={args.pip_ca}"]
    production, test = f"{IMAGE}:{version}", f"{IMAGE}:{version}-test"
    engine.stream("build", *common, "--target", "runtime", "-t", production, str(ROOT))
    engine.stream("build", *common, "--target", "test", "-t", test, str(ROOT))
    return production, test


def check_image(engine: Engine, image: str, version: str, revision: str) -> None:
    data = engine.inspect("image", image)
    config = data.get("Config") or {}
    require(config.get("User") == "1000:1000", f"{image} runs as {config.get('User')!r}, not 1000:1000")
    exposed = set(config.get("ExposedPorts") or {})
    require(exposed == {f"{GRPC_PORT}/tcp"}, f"{image} exposes {sorted(exposed)}, not only {GRPC_PORT}/tcp")
    labels = config.get("Labels") or {}
    label = labels.get("org.opencontainers.image.version")
    require(label == version, f"{image} is labelled version {label!r}, not {version!r}")
    label = labels.get("org.opencontainers.image.revision")
    require(label == revision, f"{image} is labelled revision {label!r}, not {revision!r}")
    entrypoint = config.get("Entrypoint") or []
    require(entrypoint[:2] == ["tini", "--"], f"{image}'s entrypoint {entrypoint} does not start with tini")
    healthcheck = config.get("Healthcheck") or data.get("Healthcheck") or {}
    test = " ".join(healthcheck.get("Test") or [])
    require("orchestrator health" in test, f"{image} has no HEALTHCHECK running `orchestrator health`: {test!r}")
    listing = json.loads(engine.run("run", "--rm", *ULIMITS, "--network", "none", "--read-only", image, "plugins"))
    names = {plugin["name"] for plugin in listing["plugins"]} | {plugin["name"] for plugin in listing["failed"]}
    require("sample" not in names, f"the production image {image} carries the test plugin 'sample'")
    # An arbitrary UID in group 0, as OpenShift runs images, can write the data directory.
    probe = engine.run("run", "--rm", *ULIMITS, "--network", "none", "--user", "1234:0", "--entrypoint", "sh",
                       image, "-c", "touch /var/lib/orchestrator/probe && echo writable", check=False)
    require("writable" in probe, f"UID 1234 in group 0 cannot write /var/lib/orchestrator: {probe!r}")
    loaded = sorted(p["name"] for p in listing["plugins"])
    failed = sorted(p["name"] for p in listing["failed"])
    print(f"image {image}: USER 1000:1000, EXPOSE {GRPC_PORT}, version {version}, HEALTHCHECK, "
          f"plugins {loaded}, failed to load {failed}")


def check_container(engine: Engine, image: str, orchestrator: str) -> None:
    name = f"orchestrator-check-{uuid.uuid4().hex[:8]}"
    volume = f"{name}-data"
    engine.run("volume", "create", volume)
    try:
        engine.run(
            "run", "-d", "--name", name, *ULIMITS,
            "--read-only",
            "--tmpfs", "/tmp:rw,mode=1777,size=256m",
            "-v", f"{volume}:/var/lib/orchestrator",
            "-p", f"127.0.0.1::{GRPC_PORT}",
            "-e", "ORCH_COUNCILS__DEV__BACKEND=sample-template",
            "-e", f"ORCH_COUNCILS__DEV__AGENTS={COUNCIL_SIZE}",
            "-e", "ORCH_GRACE_PERIOD_SECONDS=5",
            # The QA council stays on the default backend: the embedded model in the image.
            "-e", f"ORCH_COUNCILS__QA__AGENTS={COUNCIL_SIZE}",
            "-e", f"ORCH_EMBEDDED_MAX_TOKENS={EMBEDDED_MAX_TOKENS}",
            image,
        )
        _check_running(engine, name, orchestrator)
    finally:
        print(f"--- output of {name} ---")
        print(engine.logs(name), end="")
        engine.run("rm", "-f", name, check=False, quiet=True)
        engine.run("volume", "rm", "-f", volume, check=False, quiet=True)


def _check_running(engine: Engine, name: str, orchestrator: str) -> None:
    address = _published_address(engine, name)
    wait_for_serving(orchestrator, address, within_seconds=START_SECONDS,
                     still_running=lambda: _state(engine, name).get("Running") is True)
    result = health(orchestrator, address, SERVICE_NAME)
    require(result.returncode == 0, f"{SERVICE_NAME} not SERVING: {result.stdout}{result.stderr}")
    print(f"health through {address}: {result.stdout.strip()}")
    _check_healthcheck(engine, name)
    _check_deliberation(orchestrator, address)
    _check_embedded_deliberation(orchestrator, address)
    _check_confinement(engine, name)
    engine.run("stop", "--time", "30", name)
    code = _state(engine, name).get("ExitCode")
    require(code == 0, f"the server exited with {code} on SIGTERM, not 0")
    print("stopped on SIGTERM with exit code 0")


def _published_address(engine: Engine, name: str) -> str:
    lines = engine.run("port", name, f"{GRPC_PORT}/tcp", quiet=True).split()
    require(bool(lines), f"{name}: port {GRPC_PORT} is not published")
    return lines[0].replace("0.0.0.0", "127.0.0.1")


def _state(engine: Engine, name: str) -> dict[str, object]:
    state: dict[str, object] = engine.inspect("container", name).get("State") or {}
    return state


def _check_healthcheck(engine: Engine, name: str) -> None:
    """The image's own HEALTHCHECK, run now (podman) or as the engine reports it (docker)."""
    if engine.name == "podman":
        engine.run("healthcheck", "run", name)
        print("image HEALTHCHECK: healthy")
        return
    deadline = time.monotonic() + START_SECONDS
    status = ""
    while time.monotonic() < deadline:
        health_state = _state(engine, name).get("Health")
        status = str(health_state.get("Status", "")) if isinstance(health_state, dict) else ""
        if status in ("healthy", "unhealthy"):
            break
        time.sleep(1)
    require(status == "healthy", f"the image's HEALTHCHECK reports {status!r}, not healthy")
    print("image HEALTHCHECK: healthy")


def _check_deliberation(orchestrator: str, address: str) -> None:
    command = [orchestrator, "deliberate", "--address", address, "--role", "DEV", "--timeout", "60",
               "--task", "Write a function that parses ISO dates", "--rounds", "1", "--json"]
    show(command)
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    require(result.returncode == 0, f"the deliberation failed ({result.returncode}): {result.stderr}")
    response = json.loads(result.stdout)
    results = response["results"]
    require(len(results) == COUNCIL_SIZE, f"{len(results)} ranked proposals, not {COUNCIL_SIZE}")
    contents = [r["proposal"]["content"] for r in results]
    require(all("proposes: Write a function that parses ISO dates" in c for c in contents),
            f"the proposals are not the sample council's: {contents}")
    print(f"deliberation {response['deliberation_id']}: {len(results)} ranked proposals, "
          f"rounds {response['rounds']}, failures {len(response['failures'])}")


def _check_embedded_deliberation(orchestrator: str, address: str) -> None:
    """A council on the model the image carries: real replies, counted tokens, no model server."""
    command = [orchestrator, "deliberate", "--address", address, "--role", "QA", "--timeout", "300",
               "--task", "Write a Python function add(a, b) and a pytest test for it", "--rounds", "0", "--json"]
    show(command)
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=360)
    require(result.returncode == 0, f"the embedded deliberation failed ({result.returncode}): {result.stderr}")
    response = json.loads(result.stdout)
    results = response["results"]
    require(len(results) == COUNCIL_SIZE and not response["failures"],
            f"{len(results)} proposals and failures {response['failures']} from the embedded model")
    completion = int(response["usage"]["completion_tokens"])
    require(0 < completion <= COUNCIL_SIZE * EMBEDDED_MAX_TOKENS,
            f"the embedded model's replies counted {completion} tokens")
    print(f"embedded deliberation {response['deliberation_id']}: {len(results)} proposals, "
          f"{completion} completion tokens")


def _check_confinement(engine: Engine, name: str) -> None:
    init = engine.run("exec", name, "cat", "/proc/1/comm", quiet=True).strip()
    require(init == "tini", f"PID 1 is {init!r}, not tini: orphaned processes would not be reaped")
    status = engine.run("exec", name, "cat", "/proc/1/status", quiet=True)
    ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines() if line.startswith(("Uid:", "Gid:"))}
    require(ids.get("Uid") == ["1000"] * 4, f"the server's UIDs are {ids.get('Uid')}, not 1000")
    require(ids.get("Gid") == ["1000"] * 4, f"the server's GIDs are {ids.get('Gid')}, not 1000")
    host_config = engine.inspect("container", name).get("HostConfig") or {}
    require(host_config.get("ReadonlyRootfs") is True, "the container's root filesystem is not read-only")
    probe = "touch /orchestrator-probe; echo root=$?; touch /tmp/probe; echo tmp=$?; " \
            "touch /var/lib/orchestrator/probe; echo data=$?; ls /var/lib/orchestrator"
    output = engine.run("exec", name, "sh", "-c", probe, check=False, quiet=True)
    require("root=0" not in output and "root=" in output, f"the root filesystem is writable: {output}")
    require("tmp=0" in output and "data=0" in output, f"/tmp or the data volume is not writable: {output}")
    require("orchestrator.sqlite3" in output, f"no records database on the data volume: {output}")
    print("PID 1 is tini; runs as UID/GID 1000; root filesystem read-only; /tmp and /var/lib/orchestrator writable")


if __name__ == "__main__":
    sys.exit(main())
