"""Rendering deploy/k8s overlays: `kubectl kustomize` when kubectl is installed, else a small
renderer of the kustomize features the manifests use.

The renderer supports exactly what deploy/k8s needs — ``resources`` (files and
directories), ``components`` (a Component's resources, ConfigMaps and patches, applied to
what the kustomization's resources produced), ``namespace``, ``images``, ``patches`` given
by ``path`` (strategic merge, with ``null`` deleting a field) and ``configMapGenerator``
from ``files`` with a fixed name (``disableNameSuffixHash``) — and rejects any other
kustomization field, so a manifest change that needs more fails loudly instead of rendering
wrong. Where kubectl exists, a
test checks both give the same objects.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

SUPPORTED_FIELDS = frozenset({
    "apiVersion", "kind", "resources", "components", "namespace", "images", "patches", "configMapGenerator",
})
COMPONENT_FIELDS = frozenset({"apiVersion", "kind", "resources", "patches", "configMapGenerator"})
GENERATOR_FIELDS = frozenset({"name", "files", "options"})
GENERATOR_OPTIONS = frozenset({"labels", "annotations", "disableNameSuffixHash"})
CLUSTER_SCOPED_KINDS = frozenset({
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass", "PriorityClass", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
})
# List fields merged element by element (by this key) in a strategic merge patch; any other
# list is replaced whole, as Kubernetes does for lists without a patch merge key.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
}


class UnsupportedKustomization(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render_with_kubectl(directory: Path) -> list[Obj]:
    binary = kubectl()
    if binary is None:
        raise RuntimeError("kubectl is not installed")
    result = subprocess.run([binary, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render(directory: Path) -> list[Obj]:
    """The objects of a kustomization directory, by kubectl when installed, else by :func:`build`."""
    return render_with_kubectl(directory) if kubectl() else build(directory)


def build(directory: Path) -> list[Obj]:
    """Renders a kustomization directory with this module's own renderer."""
    path = directory / "kustomization.yaml"
    kustomization: Obj = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{path}: unsupported field(s) {sorted(unknown)}")
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedKustomization(f"{path}: a {kustomization['kind']} is not a kustomization to build")
    objects = _resources(directory, kustomization)
    for entry in kustomization.get("components", []):
        _apply_component((directory / entry).resolve(), objects)
    _apply_patches(directory, kustomization, objects)
    if "namespace" in kustomization:
        _set_namespace(objects, kustomization["namespace"])
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    return objects


def _resources(directory: Path, kustomization: Obj) -> list[Obj]:
    objects: list[Obj] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        objects += build(target) if target.is_dir() else _load(target)
    return objects + [_generated_config_map(directory, generator)
                      for generator in kustomization.get("configMapGenerator", [])]


def _generated_config_map(directory: Path, generator: Obj) -> Obj:
    """A ``configMapGenerator`` entry's ConfigMap: each of its ``files`` (``KEY=PATH`` or ``PATH``,
    keyed by the file's name) a key of ``data``. Only fixed names: the hash suffix kustomize
    would otherwise add is not computed here."""
    path = directory / "kustomization.yaml"
    options = generator.get("options", {})
    unknown = (set(generator) - GENERATOR_FIELDS) | (set(options) - GENERATOR_OPTIONS)
    if unknown:
        raise UnsupportedKustomization(f"{path}: unsupported configMapGenerator field(s) {sorted(unknown)}")
    if options.get("disableNameSuffixHash") is not True:
        raise UnsupportedKustomization(f"{path}: generated names need options.disableNameSuffixHash: true")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, name = entry.rpartition("=")
        data[key or Path(name).name] = (directory / name).read_text(encoding="utf-8")
    metadata: Obj = {"name": generator["name"]}
    for field in ("labels", "annotations"):
        if options.get(field):
            metadata[field] = dict(options[field])
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _apply_patches(directory: Path, kustomization: Obj, objects: list[Obj]) -> None:
    path = directory / "kustomization.yaml"
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise UnsupportedKustomization(f"{path}: only patches given by `path` are supported: {patch_entry}")
        for patch in _load(directory / patch_entry["path"]):
            _apply_patch(objects, patch, path)


def _apply_component(directory: Path, objects: list[Obj]) -> None:
    """Adds a Component's resources to ``objects`` and applies its patches to all of them."""
    path = directory / "kustomization.yaml"
    component: Obj = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if component.get("kind") != "Component":
        raise UnsupportedKustomization(f"{path}: a component must be of kind Component")
    unknown = set(component) - COMPONENT_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{path}: unsupported field(s) {sorted(unknown)}")
    objects += _resources(directory, component)
    _apply_patches(directory, component, objects)


def _load(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _apply_patch(objects: list[Obj], patch: Obj, source: Path) -> None:
    for index, obj in enumerate(objects):
        if obj["kind"] == patch["kind"] and obj["metadata"]["name"] == patch["metadata"]["name"]:
            objects[index] = strategic_merge(obj, patch)
            return
    raise UnsupportedKustomization(f"{source}: patch target {patch['kind']}/{patch['metadata']['name']} not found")


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into ``original`` the way a strategic merge patch is (see MERGE_KEYS)."""
    if isinstance(original, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(original)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(original, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged_list = copy.deepcopy(original)
        for item in patch:
            match = next((i for i, old in enumerate(merged_list) if old.get(key) == item.get(key)), None)
            if match is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[match] = strategic_merge(merged_list[match], item)
        return merged_list
    return copy.deepcopy(patch)


def _set_namespace(objects: list[Obj], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        elif obj["kind"] not in CLUSTER_SCOPED_KINDS:
            obj["metadata"]["namespace"] = namespace


def _set_image(objects: list[Obj], image: Obj) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise UnsupportedKustomization(f"images: unsupported field(s) {sorted(unknown)}")
    for obj in objects:
        for container in _containers(obj):
            name, tag = _split_image(container.get("image", ""))
            if name != image["name"]:
                continue
            new = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{new}@{image['digest']}"
            elif "newTag" in image:
                container["image"] = f"{new}:{image['newTag']}"
            else:
                container["image"] = f"{new}{tag}"


def _containers(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _split_image(image: str) -> tuple[str, str]:
    """``name``, and the ``:tag`` or ``@digest`` suffix (may be empty)."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, f"@{digest}"
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
# Where kubectl is missing (CI may lack it) the built-in renderer alone is checked.
RENDERERS: dict[str, Callable[[Path], list[Obj]]] = {
    **({"kubectl": render_with_kubectl} if kubectl() else {}),
    "builtin": build,
}
_CACHE: dict[tuple[str, str], list[Obj]] = {}


def rendered(overlay: str, renderer: str) -> list[Obj]:
    """An overlay of deploy/k8s as a renderer gives it (rendered once, a fresh copy each call)."""
    key = (overlay, renderer)
    if key not in _CACHE:
        _CACHE[key] = RENDERERS[renderer](K8S / "overlays" / overlay)
    return copy.deepcopy(_CACHE[key])


TLS_DIR = "/etc/orchestrator/tls"
"""Where deploy/k8s/components/tls mounts the certificate secret."""
