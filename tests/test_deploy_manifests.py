"""The Kubernetes manifests of deploy/k8s: both overlays render, validate against the
Kubernetes schemas, and keep the security settings, probes, ports and grace periods.

Every overlay is rendered by `kubectl kustomize` where kubectl is installed and always by
the built-in renderer of deploy_kustomize, so the rules are checked without kubectl too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from deploy_checks import (
    ROOT,
    grace_problems,
    image_problems,
    one,
    pod_security_problems,
    pod_spec,
    port_problems,
    probe_problems,
    project_version,
    selector_problems,
    service_health_name,
    settings,
    writable_path_problems,
)
from deploy_kustomize import UnsupportedKustomization, build, kubectl, render_with_kubectl, strategic_merge
from kubernetes_validate import utils as validate_utils

Obj = dict[str, Any]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("single", "ha")
NAMESPACE = "orchestrator"
# Where kubectl is missing (CI may lack it) the built-in renderer alone is checked.
RENDERERS: dict[str, Callable[[Path], list[Obj]]] = {
    **({"kubectl": render_with_kubectl} if kubectl() else {}),
    "builtin": build,
}
_CACHE: dict[tuple[str, str], list[Obj]] = {}


def rendered(overlay: str, renderer: str) -> list[Obj]:
    key = (overlay, renderer)
    if key not in _CACHE:
        _CACHE[key] = RENDERERS[renderer](K8S / "overlays" / overlay)
    return copy.deepcopy(_CACHE[key])


@pytest.fixture(params=[(o, r) for o in OVERLAYS for r in RENDERERS], ids=lambda p: f"{p[0]}-{p[1]}")
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    overlay, renderer = request.param
    return rendered(overlay, renderer)


@pytest.fixture(params=OVERLAYS)
def builtin(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, rendered(request.param, "builtin")


def names(objects: list[Obj]) -> set[tuple[str, str]]:
    return {(obj["kind"], obj["metadata"]["name"]) for obj in objects}


COMMON = {
    ("Namespace", "orchestrator"),
    ("ServiceAccount", "orchestrator"),
    ("ConfigMap", "orchestrator-config"),
    ("Secret", "orchestrator-secrets"),
    ("Deployment", "orchestrator"),
    ("Service", "orchestrator"),
    ("PodDisruptionBudget", "orchestrator"),
    ("NetworkPolicy", "orchestrator"),
}


@pytest.mark.parametrize(
    ("overlay", "extra"),
    [("single", {("PersistentVolumeClaim", "orchestrator-data")}),
     ("ha", {("HorizontalPodAutoscaler", "orchestrator")})],
)
@pytest.mark.parametrize("renderer", RENDERERS)
def test_each_overlay_renders_exactly_its_objects(overlay: str, extra: set[tuple[str, str]], renderer: str) -> None:
    assert names(rendered(overlay, renderer)) == COMMON | extra


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.skipif(kubectl() is None, reason="kubectl is not installed: nothing to compare the built-in renderer with")
def test_builtin_renderer_gives_what_kubectl_gives(overlay: str) -> None:
    assert _normalized(rendered(overlay, "builtin")) == _normalized(rendered(overlay, "kubectl"))


def _normalized(objects: list[Obj]) -> dict[tuple[str, str], Any]:
    """Objects by kind and name, with lists of named items in name order (kustomize reorders them)."""

    def normal(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [normal(v) for v in value]
            if items and all(isinstance(v, dict) and "name" in v for v in items):
                return sorted(items, key=lambda v: v["name"])
            return items
        return value

    return {(obj["kind"], obj["metadata"]["name"]): normal(obj) for obj in objects}


@pytest.mark.parametrize("version", sorted({validate_utils.all_versions()[0], validate_utils.latest_version()}))
def test_every_object_validates_against_the_kubernetes_schemas(objects: list[Obj], version: str) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_pods_follow_the_restricted_standard_as_uid_1000(objects: list[Obj]) -> None:
    assert pod_security_problems(one(objects, "Deployment")) == []


def test_only_tmp_and_the_database_directory_are_writable(objects: list[Obj]) -> None:
    deployment = one(objects, "Deployment")
    assert writable_path_problems(deployment, settings(objects)["ORCH_DATABASE_PATH"]) == []


def test_probes_are_native_grpc_and_readiness_checks_the_orchestrator_service(objects: list[Obj]) -> None:
    assert service_health_name() == "orchestrator.v1.OrchestratorService"
    assert probe_problems(one(objects, "Deployment"), service_health_name()) == []


def test_the_grpc_port_agrees_across_settings_container_service_and_network_policy(objects: list[Obj]) -> None:
    assert port_problems(objects) == []


def test_the_kubelet_waits_longer_than_the_service_drains(objects: list[Obj]) -> None:
    assert grace_problems(objects) == []


def test_the_image_is_pinned_to_the_release(objects: list[Obj]) -> None:
    assert image_problems(one(objects, "Deployment"), project_version()) == []


def test_service_budget_and_policy_select_the_pods(objects: list[Obj]) -> None:
    assert selector_problems(objects) == []


def test_namespace_enforces_the_restricted_standard_and_holds_everything(objects: list[Obj]) -> None:
    labels = one(objects, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"} == {NAMESPACE}


def test_service_account_mounts_no_token(objects: list[Obj]) -> None:
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod_spec(one(objects, "Deployment"))["serviceAccountName"] == "orchestrator"


def test_settings_and_secrets_reach_the_container(objects: list[Obj]) -> None:
    env_from = pod_spec(one(objects, "Deployment"))["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": "orchestrator-config"}} in env_from
    assert {"secretRef": {"name": "orchestrator-secrets"}} in env_from


def test_secrets_hold_placeholders_only(builtin: tuple[str, list[Obj]]) -> None:
    overlay, objects = builtin
    secret = one(objects, "Secret")
    assert "data" not in secret
    values = secret["stringData"]
    assert values["ORCH_OPENAI_API_KEY"] == ""
    assert values["ORCH_ANTHROPIC_API_KEY"] == ""
    if overlay == "ha":
        assert set(values) == {"ORCH_OPENAI_API_KEY", "ORCH_ANTHROPIC_API_KEY", "ORCH_DATABASE_URL"}
        assert values["ORCH_DATABASE_URL"].startswith("postgresql://")
        assert ":REPLACE_ME@" in values["ORCH_DATABASE_URL"]
    else:
        assert set(values) == {"ORCH_OPENAI_API_KEY", "ORCH_ANTHROPIC_API_KEY"}


@pytest.mark.parametrize("renderer", RENDERERS)
def test_single_runs_one_replica_on_a_persistent_volume(renderer: str) -> None:
    objects = rendered("single", renderer)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "orchestrator-data"}}
    assert volumes["tmp"]["emptyDir"]
    assert one(objects, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert settings(objects)["ORCH_DATABASE_PATH"].startswith("/var/lib/orchestrator/")


@pytest.mark.parametrize("renderer", RENDERERS)
def test_ha_runs_several_replicas_scaled_by_an_autoscaler(renderer: str) -> None:
    objects = rendered("ha", renderer)
    deployment = one(objects, "Deployment")
    autoscaler = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orchestrator"}
    assert autoscaler["minReplicas"] == deployment["spec"]["replicas"] >= 2
    assert autoscaler["maxReplicas"] > autoscaler["minReplicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    budget = one(objects, "PodDisruptionBudget")["spec"]
    assert budget == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}}
    assert all("persistentVolumeClaim" not in v for v in pod_spec(deployment)["volumes"])


# The rules catch what they are meant to: each mutation of a rendered overlay breaks one.


def _mutated(mutate: Callable[[list[Obj]], None]) -> list[Obj]:
    objects = rendered("ha", "builtin")
    mutate(objects)
    return objects


def _container(objects: list[Obj]) -> Obj:
    container: Obj = pod_spec(one(objects, "Deployment"))["containers"][0]
    return container


def test_dropping_run_as_non_root_is_caught() -> None:
    def drop(objects: list[Obj]) -> None:
        del pod_spec(one(objects, "Deployment"))["securityContext"]["runAsNonRoot"]
        del _container(objects)["securityContext"]["runAsNonRoot"]

    problems = pod_security_problems(one(_mutated(drop), "Deployment"))
    assert problems == [
        "pod securityContext.runAsNonRoot is None, not True",
        "orchestrator: securityContext.runAsNonRoot is None, not True",
    ]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("readOnlyRootFilesystem", False, "orchestrator: securityContext.readOnlyRootFilesystem is False, not True"),
        ("allowPrivilegeEscalation", True, "orchestrator: securityContext.allowPrivilegeEscalation is True, not False"),
        ("runAsUser", 0, "orchestrator: runs with runAsUser 0, not 1000"),
        ("capabilities", {"drop": ["NET_RAW"]}, "orchestrator: capabilities are not all dropped"),
    ],
)
def test_weakening_the_container_security_context_is_caught(field: str, value: Any, problem: str) -> None:
    def weaken(objects: list[Obj]) -> None:
        _container(objects)["securityContext"][field] = value

    assert pod_security_problems(one(_mutated(weaken), "Deployment")) == [problem]


def test_a_readiness_probe_on_the_whole_server_is_caught() -> None:
    def retarget(objects: list[Obj]) -> None:
        _container(objects)["readinessProbe"]["grpc"].pop("service")

    problems = probe_problems(one(_mutated(retarget), "Deployment"), service_health_name())
    assert problems == ["readinessProbe checks None, not 'orchestrator.v1.OrchestratorService'"]


def test_an_http_liveness_probe_is_caught() -> None:
    def replace(objects: list[Obj]) -> None:
        _container(objects)["livenessProbe"] = {"httpGet": {"path": "/", "port": 50055}}

    problems = probe_problems(one(_mutated(replace), "Deployment"), service_health_name())
    assert problems == ["livenessProbe is not a native gRPC probe"]


def test_a_grace_period_no_longer_than_the_drain_is_caught() -> None:
    def shorten(objects: list[Obj]) -> None:
        pod_spec(one(objects, "Deployment"))["terminationGracePeriodSeconds"] = 30

    assert grace_problems(_mutated(shorten)) == [
        "terminationGracePeriodSeconds 30 is not longer than preStop 5.0s + ORCH_GRACE_PERIOD_SECONDS 25s"
    ]


@pytest.mark.parametrize("image", ["orchestrator:latest", "orchestrator", "orchestrator:0.0.9"])
def test_an_unpinned_or_stale_image_is_caught(image: str) -> None:
    def retag(objects: list[Obj]) -> None:
        _container(objects)["image"] = image

    assert len(image_problems(one(_mutated(retag), "Deployment"), project_version())) == 1


def test_loopback_binding_and_extra_ingress_ports_are_caught() -> None:
    def open_up(objects: list[Obj]) -> None:
        settings(objects)["ORCH_HOST"] = "127.0.0.1"
        one(objects, "NetworkPolicy")["spec"]["ingress"][0]["ports"].append({"port": 9464, "protocol": "TCP"})

    problems = port_problems(_mutated(open_up))
    assert len(problems) == 2
    assert problems[0].startswith("ORCH_HOST is '127.0.0.1'")
    assert problems[1].startswith("the NetworkPolicy admits [(9464, 'TCP'), (50055, 'TCP')]")


def test_a_missing_tmp_volume_is_caught() -> None:
    def unmount(objects: list[Obj]) -> None:
        mounts = _container(objects)["volumeMounts"]
        mounts[:] = [m for m in mounts if m["mountPath"] != "/tmp"]

    objects = _mutated(unmount)
    problems = writable_path_problems(one(objects, "Deployment"), settings(objects)["ORCH_DATABASE_PATH"])
    assert problems == ["/tmp is not a mounted volume (the root filesystem is read-only)"]


# The built-in renderer's strategic merge and its refusal of what it does not implement.


def test_strategic_merge_merges_named_lists_replaces_others_and_deletes_nulls() -> None:
    original = {"spec": {
        "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}],
        "args": ["serve"],
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
    }}
    patch = {"spec": {
        "volumes": [{"name": "b", "emptyDir": None, "persistentVolumeClaim": {"claimName": "c"}}],
        "args": ["other"],
        "strategy": {"type": "Recreate", "rollingUpdate": None},
    }}
    assert strategic_merge(original, patch) == {"spec": {
        "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "persistentVolumeClaim": {"claimName": "c"}}],
        "args": ["other"],
        "strategy": {"type": "Recreate"},
    }}


def test_builtin_renderer_refuses_kustomize_features_it_lacks(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n", encoding="utf-8")
    with pytest.raises(UnsupportedKustomization, match="commonLabels"):
        build(tmp_path)


def test_schema_validation_rejects_a_misspelt_field() -> None:
    deployment = one(rendered("single", "builtin"), "Deployment")
    container = pod_spec(deployment)["containers"][0]
    container["securityContxt"] = container.pop("securityContext")
    with pytest.raises(kubernetes_validate.ValidationError, match="securityContxt"):
        kubernetes_validate.validate(deployment, validate_utils.latest_version(), strict=True)
