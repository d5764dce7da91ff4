"""The Kubernetes manifests of deploy/k8s: every overlay renders, validates against the
Kubernetes schemas, and keeps the security settings, probes, ports and grace periods; the
TLS component turns mutual TLS on with probes that speak it. That the rules catch what they
are meant to is in test_deploy_manifest_rules.py; deploy/README.md's steps in
test_deploy_readme.py; the scaled overlays' NATS, workers and autoscalers in
test_deploy_scaled.py (here their fronts follow the service's rules like every overlay).

Every overlay is rendered by `kubectl kustomize` where kubectl is installed and always by
the built-in renderer of deploy_kustomize, so the rules are checked without kubectl too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from deploy_checks import (
    ROOT,
    autoscaling_problems,
    grace_problems,
    health_options,
    image_problems,
    one,
    pod_security_problems,
    pod_spec,
    port_problems,
    probe_problems,
    project_version,
    scrape_problems,
    selector_problems,
    service_health_name,
    settings,
    tls_problems,
    writable_path_problems,
)
from deploy_kustomize import (
    RENDERERS,
    TLS_DIR,
    Obj,
    UnsupportedKustomization,
    build,
    kubectl,
    rendered,
    strategic_merge,
)
from deploy_queue_checks import fronts
from kubernetes_validate import utils as validate_utils

OVERLAYS = ("single", "ha", "ha-tls", "ha-monitoring", "scaled", "scaled-hpa")
NAMESPACE = "orchestrator"
# Objects of custom resource definitions, which the Kubernetes schemas do not cover: checked
# field by field below instead.
CUSTOM_RESOURCES = frozenset({("cert-manager.io/v1", "Certificate"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
                              ("keda.sh/v1alpha1", "ScaledObject")})
DASHBOARD = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "orchestrator-dashboard.json"

@pytest.fixture(params=[(o, r) for o in OVERLAYS for r in RENDERERS], ids=lambda p: f"{p[0]}-{p[1]}")
def every_object(request: pytest.FixtureRequest) -> list[Obj]:
    overlay, renderer = request.param
    return rendered(overlay, renderer)


@pytest.fixture
def objects(every_object: list[Obj]) -> list[Obj]:
    """The gRPC service's objects: the scaled overlays' NATS and workers left out."""
    return fronts(every_object)


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


QUEUE = {
    ("ConfigMap", "nats-config"),
    ("StatefulSet", "nats"),
    ("Service", "nats"),
    ("Service", "nats-headless"),
    ("NetworkPolicy", "nats"),
    ("Deployment", "orchestrator-worker"),
    ("NetworkPolicy", "orchestrator-worker"),
    ("PodDisruptionBudget", "orchestrator-worker"),
}


@pytest.mark.parametrize(
    ("overlay", "extra"),
    [("single", {("PersistentVolumeClaim", "orchestrator-data")}),
     ("ha", {("HorizontalPodAutoscaler", "orchestrator")}),
     ("ha-tls", {("HorizontalPodAutoscaler", "orchestrator"), ("Certificate", "orchestrator-tls")}),
     ("ha-monitoring", {("HorizontalPodAutoscaler", "orchestrator"), ("ServiceMonitor", "orchestrator"),
                        ("ConfigMap", "orchestrator-dashboard")}),
     ("scaled", {("HorizontalPodAutoscaler", "orchestrator"), *QUEUE, ("ScaledObject", "orchestrator-worker")}),
     ("scaled-hpa", {("HorizontalPodAutoscaler", "orchestrator"), *QUEUE,
                     ("HorizontalPodAutoscaler", "orchestrator-worker")})],
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
def test_every_object_validates_against_the_kubernetes_schemas(every_object: list[Obj], version: str) -> None:
    for obj in every_object:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_RESOURCES:
            continue
        kubernetes_validate.validate(obj, version, strict=True)


def test_pods_follow_the_restricted_standard_as_uid_1000(objects: list[Obj]) -> None:
    assert pod_security_problems(one(objects, "Deployment")) == []


def test_only_tmp_and_the_database_directory_are_writable(objects: list[Obj]) -> None:
    deployment = one(objects, "Deployment")
    assert writable_path_problems(deployment, settings(objects)["ORCH_DATABASE_PATH"]) == []


def test_probes_ask_grpc_health_and_readiness_checks_the_orchestrator_service(objects: list[Obj]) -> None:
    assert service_health_name() == "orchestrator.v1.OrchestratorService"
    assert probe_problems(one(objects, "Deployment"), service_health_name()) == []


def test_probes_speak_tls_exactly_when_the_server_does(objects: list[Obj]) -> None:
    assert tls_problems(objects) == []


def test_no_autoscaled_deployment_sets_its_own_replicas(objects: list[Obj]) -> None:
    assert autoscaling_problems(objects) == []


def test_the_image_and_the_config_map_drain_for_the_same_time(objects: list[Obj]) -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    (image_grace,) = re.findall(r"\bORCH_GRACE_PERIOD_SECONDS=(\S+)", dockerfile)
    assert settings(objects)["ORCH_GRACE_PERIOD_SECONDS"] == image_grace


def test_the_grpc_port_agrees_across_settings_container_service_and_network_policy(objects: list[Obj]) -> None:
    assert port_problems(objects) == []


def test_prometheus_finds_the_metrics_port_by_annotation_or_service_monitor(objects: list[Obj]) -> None:
    assert scrape_problems(objects) == []


# The ServiceMonitor's fields as the Prometheus Operator's CRD (monitoring.coreos.com/v1)
# defines them, for the ones used here: the Kubernetes schemas do not know the kind.
SERVICE_MONITOR_SPEC = {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"}
SERVICE_MONITOR_ENDPOINT = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
                            "relabelings", "metricRelabelings"}
PROMETHEUS_DURATION = re.compile(r"^((\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?|0)$")


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_monitoring_component_adds_a_service_monitor_and_the_dashboard(renderer: str) -> None:
    objects = rendered("ha-monitoring", renderer)
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert set(monitor["spec"]) <= SERVICE_MONITOR_SPEC
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == ("metrics", "/metrics", "http")
    for field in ("interval", "scrapeTimeout"):
        assert PROMETHEUS_DURATION.match(endpoint[field]), f"{field} {endpoint[field]!r} is not a duration"
    (dashboard,) = [obj for obj in objects
                    if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] != "orchestrator-config"]
    assert dashboard["metadata"]["name"] == "orchestrator-dashboard"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"] == {"orchestrator-dashboard.json": DASHBOARD.read_text(encoding="utf-8")}
    # Without the component no object needs the Prometheus Operator's CRDs.
    assert "ServiceMonitor" not in {obj["kind"] for obj in rendered("ha", renderer)}


def test_the_kubelet_waits_longer_than_the_service_drains(objects: list[Obj]) -> None:
    assert grace_problems(objects) == []


def test_the_image_is_pinned_to_the_release(objects: list[Obj]) -> None:
    assert image_problems(one(objects, "Deployment"), project_version()) == []


def test_service_budget_and_policy_select_the_pods(objects: list[Obj]) -> None:
    assert selector_problems(objects) == []


def test_namespace_enforces_the_restricted_standard_and_holds_everything(every_object: list[Obj]) -> None:
    labels = one(every_object, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {obj["metadata"].get("namespace") for obj in every_object if obj["kind"] != "Namespace"} == {NAMESPACE}


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
    if overlay.startswith(("ha", "scaled")):
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


@pytest.mark.parametrize("overlay", ["ha", "ha-tls"])
@pytest.mark.parametrize("renderer", RENDERERS)
def test_ha_runs_several_replicas_scaled_by_an_autoscaler(overlay: str, renderer: str) -> None:
    objects = rendered(overlay, renderer)
    deployment = one(objects, "Deployment")
    autoscaler = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orchestrator"}
    # The autoscaler alone sets the count: an apply never resets it.
    assert "replicas" not in deployment["spec"]
    assert autoscaler["minReplicas"] >= 2
    assert autoscaler["maxReplicas"] > autoscaler["minReplicas"]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    budget = one(objects, "PodDisruptionBudget")["spec"]
    assert budget == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}}
    assert all("persistentVolumeClaim" not in v for v in pod_spec(deployment)["volumes"])


@pytest.mark.parametrize("renderer", RENDERERS)
def test_ha_prefers_pods_on_different_nodes_and_spreads_them_over_zones(renderer: str) -> None:
    spec = pod_spec(one(rendered("ha", renderer), "Deployment"))
    pods = {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}
    (preferred,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname", "labelSelector": pods}
    assert preferred["weight"] == 100
    # Preferred only: fewer nodes than pods still runs them all.
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"]["podAntiAffinity"]
    spreads = {c["topologyKey"]: c for c in spec["topologySpreadConstraints"]}
    assert set(spreads) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in spreads.values():
        assert constraint == {"maxSkew": 1, "topologyKey": constraint["topologyKey"],
                              "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": pods}




@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_tls_component_mounts_the_certificate_and_probes_over_mutual_tls(renderer: str) -> None:
    objects = rendered("ha-tls", renderer)
    config = settings(objects)
    assert {k: v for k, v in config.items() if k.startswith("ORCH_TLS_")} == {
        "ORCH_TLS_CERT_FILE": f"{TLS_DIR}/tls.crt",
        "ORCH_TLS_KEY_FILE": f"{TLS_DIR}/tls.key",
        "ORCH_TLS_CLIENT_CA_FILE": f"{TLS_DIR}/ca.crt",
    }
    spec = pod_spec(one(objects, "Deployment"))
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["tls"] == {"name": "tls", "secret": {"secretName": "orchestrator-tls", "defaultMode": 0o440}}
    container = spec["containers"][0]
    assert {"name": "tls", "mountPath": TLS_DIR, "readOnly": True} in container["volumeMounts"]
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container[kind]
        assert "grpc" not in probe
        options = health_options(probe["exec"]["command"])
        assert options is not None
        assert {k: options[k] for k in ("--address", "--tls", "--ca-file", "--cert-file", "--key-file")} == {
            "--address": "127.0.0.1:50055", "--tls": "", "--ca-file": f"{TLS_DIR}/ca.crt",
            "--cert-file": f"{TLS_DIR}/tls.crt", "--key-file": f"{TLS_DIR}/tls.key",
        }
        # The probe's own deadline ends before the kubelet gives up on the command.
        assert float(options["--timeout"]) < probe["timeoutSeconds"]
    certificate = one(objects, "Certificate")
    assert certificate["metadata"]["namespace"] == NAMESPACE
    cert = certificate["spec"]
    assert cert["secretName"] == "orchestrator-tls"
    # The probes dial 127.0.0.1 and present the pod's certificate as a client's.
    assert "127.0.0.1" in cert["ipAddresses"]
    assert set(cert["usages"]) == {"server auth", "client auth"}
    assert f"orchestrator.{NAMESPACE}.svc" in cert["dnsNames"]
    assert set(cert["issuerRef"]) == {"group", "kind", "name"}


def test_the_cli_takes_the_options_the_tls_probes_pass() -> None:
    """The probes' options are the real ones of `orchestrator health`."""
    from orchestrator_grpc.cli import build_parser

    container = pod_spec(one(rendered("ha-tls", "builtin"), "Deployment"))["containers"][0]
    command = container["readinessProbe"]["exec"]["command"]
    args = build_parser().parse_args(command[1:])
    assert args.tls is True
    assert str(args.ca_file) == f"{TLS_DIR}/ca.crt"
    assert str(args.cert_file) == f"{TLS_DIR}/tls.crt"
    assert str(args.key_file) == f"{TLS_DIR}/tls.key"
    assert args.service == service_health_name()
    assert args.address == "127.0.0.1:50055"


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


def test_builtin_renderer_refuses_a_generated_name_with_a_hash_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}", encoding="utf-8")
    (tmp_path / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: a\n    files: [a.json]\n", encoding="utf-8")
    with pytest.raises(UnsupportedKustomization, match="disableNameSuffixHash"):
        build(tmp_path)


def test_builtin_renderer_refuses_a_component_feature_it_lacks(tmp_path: Path) -> None:
    component = tmp_path / "component"
    component.mkdir()
    (component / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nreplacements: []\n", encoding="utf-8")
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncomponents: [component]\n", encoding="utf-8")
    with pytest.raises(UnsupportedKustomization, match="replacements"):
        build(tmp_path)


def test_schema_validation_rejects_a_misspelt_field() -> None:
    deployment = one(rendered("single", "builtin"), "Deployment")
    container = pod_spec(deployment)["containers"][0]
    container["securityContxt"] = container.pop("securityContext")
    with pytest.raises(kubernetes_validate.ValidationError, match="securityContxt"):
        kubernetes_validate.validate(deployment, validate_utils.latest_version(), strict=True)
