"""The manifest rules of deploy_checks catch what they are meant to: each mutation of a
rendered overlay breaks exactly one rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from deploy_checks import (
    autoscaling_problems,
    grace_problems,
    image_problems,
    one,
    pod_security_problems,
    pod_spec,
    port_problems,
    probe_problems,
    project_version,
    scrape_problems,
    service_health_name,
    settings,
    tls_problems,
    writable_path_problems,
)
from deploy_kustomize import TLS_DIR, Obj, rendered

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
    assert problems == ["readinessProbe checks '', not 'orchestrator.v1.OrchestratorService'"]


def test_an_http_liveness_probe_is_caught() -> None:
    def replace(objects: list[Obj]) -> None:
        _container(objects)["livenessProbe"] = {"httpGet": {"path": "/", "port": 50055}}

    problems = probe_problems(one(_mutated(replace), "Deployment"), service_health_name())
    assert problems == ["livenessProbe is neither a native gRPC probe nor `orchestrator health`"]


def test_an_exec_probe_on_another_port_or_service_is_caught() -> None:
    objects = rendered("ha-tls", "builtin")
    command = _container(objects)["readinessProbe"]["exec"]["command"]
    command[command.index("--address") + 1] = "127.0.0.1:8080"
    command[command.index("--service") + 1] = "grpc.health.v1.Health"
    assert probe_problems(one(objects, "Deployment"), service_health_name()) == [
        "readinessProbe probes '127.0.0.1:8080', not port 50055",
        "readinessProbe checks 'grpc.health.v1.Health', not 'orchestrator.v1.OrchestratorService'",
    ]


def test_plaintext_probes_of_a_tls_server_are_caught() -> None:
    """Turning TLS on without the component's probes: native gRPC probes cannot speak it."""
    objects = rendered("ha", "builtin")
    tls = {obj["kind"]: obj for obj in rendered("ha-tls", "builtin")}
    settings(objects).update({k: v for k, v in settings([tls["ConfigMap"]]).items() if k.startswith("ORCH_TLS_")})
    spec = pod_spec(one(objects, "Deployment"))
    spec["volumes"] = pod_spec(tls["Deployment"])["volumes"]
    spec["containers"][0]["volumeMounts"] = pod_spec(tls["Deployment"])["containers"][0]["volumeMounts"]
    assert tls_problems(objects) == [f"{kind} is a native gRPC probe, which speaks plaintext only"
                                     for kind in ("startupProbe", "livenessProbe", "readinessProbe")]


def test_a_tls_probe_without_a_client_certificate_or_its_secret_is_caught() -> None:
    objects = rendered("ha-tls", "builtin")
    command = _container(objects)["livenessProbe"]["exec"]["command"]
    del command[command.index("--cert-file"):command.index("--cert-file") + 2]
    mounts = _container(objects)["volumeMounts"]
    mounts[:] = [m for m in mounts if m["name"] != "tls"]
    problems = tls_problems(objects)
    assert problems[:3] == [f"{name} {TLS_DIR}/{file} is not on a Secret mounted read-only" for name, file in
                            (("ORCH_TLS_CERT_FILE", "tls.crt"), ("ORCH_TLS_KEY_FILE", "tls.key"),
                             ("ORCH_TLS_CLIENT_CA_FILE", "ca.crt"))]
    assert "livenessProbe runs `orchestrator health` without --cert-file" in problems


def test_a_tls_probe_of_a_plaintext_server_is_caught() -> None:
    objects = rendered("ha-tls", "builtin")
    for name in ("ORCH_TLS_CERT_FILE", "ORCH_TLS_KEY_FILE", "ORCH_TLS_CLIENT_CA_FILE"):
        del settings(objects)[name]
    assert tls_problems(objects) == [f"{kind} dials with TLS but the server speaks plaintext"
                                     for kind in ("startupProbe", "livenessProbe", "readinessProbe")]


def test_replicas_beside_an_autoscaler_are_caught() -> None:
    def pin(objects: list[Obj]) -> None:
        one(objects, "Deployment")["spec"]["replicas"] = 3

    assert autoscaling_problems(_mutated(pin)) == [
        "Deployment/orchestrator sets replicas 3 while the HorizontalPodAutoscaler orchestrator scales it"
    ]


def test_a_grace_period_no_longer_than_the_drain_is_caught() -> None:
    def shorten(objects: list[Obj]) -> None:
        pod_spec(one(objects, "Deployment"))["terminationGracePeriodSeconds"] = 30

    assert grace_problems(_mutated(shorten)) == [
        "terminationGracePeriodSeconds 30 is not longer than preStop 5.0s + ORCH_DRAIN_DELAY_SECONDS 5s + "
        "ORCH_GRACE_PERIOD_SECONDS 25s"
    ]


def test_a_drain_delay_the_grace_period_does_not_cover_is_caught() -> None:
    def lengthen(objects: list[Obj]) -> None:
        settings(objects)["ORCH_DRAIN_DELAY_SECONDS"] = "15"

    assert grace_problems(_mutated(lengthen)) == [
        "terminationGracePeriodSeconds 45 is not longer than preStop 5.0s + ORCH_DRAIN_DELAY_SECONDS 15s + "
        "ORCH_GRACE_PERIOD_SECONDS 25s"
    ]


@pytest.mark.parametrize("image", ["orchestrator:latest", "orchestrator", "orchestrator:0.0.9"])
def test_an_unpinned_or_stale_image_is_caught(image: str) -> None:
    def retag(objects: list[Obj]) -> None:
        _container(objects)["image"] = image

    assert len(image_problems(one(_mutated(retag), "Deployment"), project_version())) == 1


def test_loopback_binding_and_extra_ingress_ports_are_caught() -> None:
    def open_up(objects: list[Obj]) -> None:
        settings(objects)["ORCH_HOST"] = "127.0.0.1"
        one(objects, "NetworkPolicy")["spec"]["ingress"][0]["ports"].append({"port": 8080, "protocol": "TCP"})

    problems = port_problems(_mutated(open_up))
    assert len(problems) == 2
    assert problems[0].startswith("ORCH_HOST is '127.0.0.1'")
    assert problems[1].startswith("the NetworkPolicy admits [(8080, 'TCP'), (9464, 'TCP'), (50055, 'TCP')]")


def test_a_metrics_port_the_container_does_not_open_is_caught() -> None:
    def move(objects: list[Obj]) -> None:
        settings(objects)["ORCH_METRICS_PORT"] = "9100"

    objects = _mutated(move)
    assert port_problems(objects) == ["ORCH_METRICS_PORT is '9100', not 9464"]
    assert scrape_problems(objects) == ["the pods' annotation prometheus.io/port is '9464', not '9100'"]


def test_pods_prometheus_would_not_scrape_are_caught() -> None:
    def hide(objects: list[Obj]) -> None:
        del one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"]

    assert scrape_problems(_mutated(hide)) == ["the pods' annotation prometheus.io/scrape is None, not 'true'"]


def test_a_service_monitor_on_the_wrong_port_or_service_and_an_unlabelled_dashboard_are_caught() -> None:
    objects = rendered("ha-monitoring", "builtin")
    monitor = one(objects, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["port"] = "grpc"
    monitor["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "other"}
    dashboard = next(obj for obj in objects if obj["metadata"]["name"] == "orchestrator-dashboard")
    del dashboard["metadata"]["labels"]["grafana_dashboard"]
    assert scrape_problems(objects) == [
        "ServiceMonitor/orchestrator selects {'app.kubernetes.io/name': 'other'}, not the Service's labels "
        "{'app.kubernetes.io/name': 'orchestrator', 'app.kubernetes.io/part-of': 'orchestrator'}",
        "ServiceMonitor/orchestrator scrapes the port 'grpc', not the Service's metrics port",
        'ConfigMap/orchestrator-dashboard lacks the label grafana_dashboard: "1" Grafana\'s sidecar looks for',
    ]


def test_a_missing_tmp_volume_is_caught() -> None:
    def unmount(objects: list[Obj]) -> None:
        mounts = _container(objects)["volumeMounts"]
        mounts[:] = [m for m in mounts if m["mountPath"] != "/tmp"]

    objects = _mutated(unmount)
    problems = writable_path_problems(one(objects, "Deployment"), settings(objects)["ORCH_DATABASE_PATH"])
    assert problems == ["/tmp is not a mounted volume (the root filesystem is read-only)"]
