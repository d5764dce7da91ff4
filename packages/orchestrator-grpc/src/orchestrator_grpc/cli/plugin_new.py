"""``orchestrator plugin new NAME``: a new plugin package, rendered from the template.

The package (``NAME/`` under ``--directory``) is pip-installable: a src layout, a
pyproject with the entry point (group ``orchestrator``) and a dependency range on
orchestrator-core, an example agent backend and check, tests that run both through the
conformance kit of ``orchestrator_core.testing``, and a README.

NAME is the distribution name, the entry-point name and the backend's name; its import
package is NAME with ``-`` as ``_``. A NAME that cannot be all of these is a usage error
(exit 2). Only the standard library is imported here, so parsing the command line stays fast.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

TEMPLATE = "plugin_template"
SUFFIX = ".tmpl"
PACKAGE_PLACEHOLDER = "__package__"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
MAX_NAME_LENGTH = 60
RESERVED = frozenset({"orchestrator", "orchestrator-core", "orchestrator-grpc", "agents-contrib", "test", "tests"})
FAILURE = 1


def plugin_name(text: str) -> str:
    """NAME as argparse checks it: lowercase letters and digits in words joined by single
    hyphens, starting with a letter, that do not shadow a standard or project module."""
    name = text.strip()
    if not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a plugin name: use lowercase letters and digits, words joined by single "
            f"hyphens, starting with a letter, at most {MAX_NAME_LENGTH} characters (e.g. acme-reviewer)"
        )
    package = package_of(name)
    if name in RESERVED or package in sys.stdlib_module_names or keyword.iskeyword(package) or (
        package.startswith(("orchestrator_core", "orchestrator_grpc", "agents_contrib"))
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a plugin name: its package {package!r} would shadow a standard or Orchestrator "
            "module; choose a more specific name (e.g. acme-reviewer)"
        )
    return name


def package_of(name: str) -> str:
    return name.replace("-", "_")


def core_requirement() -> str:
    """The dependency range on orchestrator-core: the installed version up to the next major
    (below 2 while the core is 0.x, so the plugin platform's 1.0 is in range)."""
    try:
        version = metadata.version("orchestrator-core")
    except metadata.PackageNotFoundError:  # pragma: no cover - the command needs the core installed
        version = "0.1.0"
    leading = re.match(r"\d+", version)
    major = int(leading.group()) if leading else 0
    return f"orchestrator-core>={version},<{max(major + 1, 2)}"


def plugin_api_range() -> str:
    """The plugin API versions a new plugin declares: the current one up to the next major."""
    try:
        from orchestrator_core.versions import PLUGIN_API_VERSION
    except ImportError:  # pragma: no cover - an older core without a plugin API version
        return ">=1.0,<2"
    major = int(PLUGIN_API_VERSION.split(".")[0])
    return f">={PLUGIN_API_VERSION},<{major + 1}"


def render(name: str, directory: Path) -> Path:
    """The package for plugin ``name`` written to ``directory/name``; returns that path.
    Raises FileExistsError when it exists and is not empty."""
    target = directory / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not empty; choose another NAME or --directory")
    package = package_of(name)
    values = {
        "name": name,
        "package": package,
        "kind": name,
        "core_requirement": core_requirement(),
        "plugin_api": plugin_api_range(),
    }
    template = resources.files("orchestrator_grpc") / TEMPLATE
    for relative, source in _files(template, Path()):
        text = source.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        destination = target / Path(*(part.replace(PACKAGE_PLACEHOLDER, package) for part in relative.parts))
        destination = destination.with_name(destination.name.removesuffix(SUFFIX))
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
    return target


def _files(folder: Traversable, relative: Path) -> list[tuple[Path, Traversable]]:
    found: list[tuple[Path, Traversable]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if entry.name != "__pycache__":
                found += _files(entry, relative / entry.name)
        elif entry.name.endswith(SUFFIX):
            found.append((relative / entry.name, entry))
    return found


def run(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    try:
        target = render(args.name, directory)
    except OSError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return FAILURE
    package = package_of(args.name)
    print(f"created plugin {args.name} in {target}")
    print(f"  src/{package}/backend.py  the agent backend {args.name!r}")
    print(f"  src/{package}/check.py    the check '{args.name}-check'")
    print(f"  tests/test_{package}.py   the conformance kit's tests: cd {target} && python -m pytest")
    return 0
