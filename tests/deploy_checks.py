"""The rules rendered deploy/k8s objects must follow, as functions listing what breaks them.

Each function returns the problems it finds (empty when the rule holds), so a test can
show both that the real manifests pass and that a manifest breaking the rule is caught.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

ROOT = Path(__file__).resolve().parents[1]
UID = 1000
GRPC_PORT = 50055
METRICS_PORT = 9464
"""Where the manifests serve Prometheus metrics (ORCH_METRICS_PORT): OpenTelemetry's
Prometheus exporter port, the usual choice for a service's own /metrics."""
NO_PRESTOP_PAUSE = 0.0


def project_version() -> str:
    data = tomllib.loads((ROOT / "packages" / "orchestrator-core" / "pyproject.toml").read_text(encoding="utf-8"))
    version: str = data["project"]["version"]
    return version


def service_health_name() -> str:
    """``<package>.<service>`` of the API spec: the health name of the OrchestratorService."""
    spec = (ROOT / "specs" / "orchestrator" / "v1" / "orchestrator.proto").read_text(encoding="utf-8")
    package = re.search(r"^package\s+([\w.]+);", spec, re.MULTILINE)
    service = re.search(r"^service\s+(\w+)", spec, re.MULTILINE)
    assert package, "the spec names no package"
    assert service, "the spec names no service"
    return f"{package.group(1)}.{service.group(1)}"


def one(objects: list[Obj], kind: str) -> Obj:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects, not 1"
    return found[0]


def pod_spec(deployment: Obj) -> Obj:
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def settings(objects: list[Obj]) -> dict[str, str]:
    """The ``ORCH_*`` settings: the data of the ConfigMap ``orchestrator-config``."""
    found = [obj for obj in objects if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "orchestrator-config"]
    assert len(found) == 1, f"{len(found)} ConfigMaps orchestrator-config, not 1"
    data: dict[str, str] = found[0]["data"]
    return data


def pod_security_problems(deployment: Obj) -> list[str]:
    """The restricted Pod Security Standard, UID/GID 1000 and a read-only root."""
    problems: list[str] = []
    spec = pod_spec(deployment)
    pod = spec.get("securityContext", {})
    expected_pod = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID}
    problems += [f"pod securityContext.{k} is {pod.get(k)!r}, not {v!r}" for k, v in expected_pod.items()
                 if pod.get(k) != v]
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile is not RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("the pod mounts a service account token")
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        name = container["name"]
        context = container.get("securityContext", {})
        expected = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True}
        problems += [f"{name}: securityContext.{k} is {context.get(k)!r}, not {v!r}" for k, v in expected.items()
                     if context.get(k) != v]
        for key in ("runAsUser", "runAsGroup"):
            if context.get(key, pod.get(key)) != UID:
                problems.append(f"{name}: runs with {key} {context.get(key, pod.get(key))!r}, not {UID}")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities are not all dropped")
        if context.get("capabilities", {}).get("add"):
            problems.append(f"{name}: adds capabilities {context['capabilities']['add']}")
        if context.get("privileged"):
            problems.append(f"{name}: is privileged")
        seccomp = context.get("seccompProfile", pod.get("seccompProfile", {})).get("type")
        if seccomp != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault")
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(section, {}))
            if missing:
                problems.append(f"{name}: no {section} for {sorted(missing)}")
    return problems


def writable_path_problems(deployment: Obj, database_path: str) -> list[str]:
    """With a read-only root, /tmp and the database's directory must be volumes."""
    spec = pod_spec(deployment)
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    problems: list[str] = []
    container = spec["containers"][0]
    mounts = {mount["mountPath"]: mount for mount in container.get("volumeMounts", [])}
    for path in ("/tmp", str(Path(database_path).parent)):
        mount = mounts.get(path)
        if mount is None:
            problems.append(f"{path} is not a mounted volume (the root filesystem is read-only)")
        elif mount.get("readOnly"):
            problems.append(f"{path} is mounted read-only")
        elif mount["name"] not in volumes:
            problems.append(f"{path} mounts the undeclared volume {mount['name']!r}")
    return problems


HEALTH_COMMAND = ["orchestrator", "health"]
LOOPBACK_ADDRESS = f"127.0.0.1:{GRPC_PORT}"


def health_options(command: list[str]) -> dict[str, str] | None:
    """The options of an ``orchestrator health`` command (flags map to ""); None for another command."""
    if command[:2] != HEALTH_COMMAND:
        return None
    options: dict[str, str] = {}
    rest = command[2:]
    while rest:
        option = rest.pop(0)
        options[option] = "" if option == "--tls" or not rest or rest[0].startswith("--") else rest.pop(0)
    return options


def probe_problems(deployment: Obj, health_name: str) -> list[str]:
    """Startup, liveness and readiness probes of the gRPC health service: native gRPC probes,
    or exec probes running `orchestrator health` against the pod's own port (needed with
    TLS); startup and liveness on the whole server, readiness on the OrchestratorService."""
    problems: list[str] = []
    container = pod_spec(deployment)["containers"][0]
    expected_service = {"startupProbe": "", "livenessProbe": "", "readinessProbe": health_name}
    for kind, expected in expected_service.items():
        probe = container.get(kind)
        if probe is not None and "grpc" in probe:
            port, service = probe["grpc"].get("port"), probe["grpc"].get("service", "")
        elif probe is not None and (options := health_options(probe.get("exec", {}).get("command", []))) is not None:
            address, service = options.get("--address"), options.get("--service", "")
            port = GRPC_PORT if address == LOOPBACK_ADDRESS else address
        else:
            problems.append(f"{kind} is neither a native gRPC probe nor `orchestrator health`")
            continue
        if port != GRPC_PORT:
            problems.append(f"{kind} probes {port!r}, not port {GRPC_PORT}")
        if service != expected:
            problems.append(f"{kind} checks {service!r}, not {expected!r}")
    return problems


TLS_SETTINGS = ("ORCH_TLS_CERT_FILE", "ORCH_TLS_KEY_FILE", "ORCH_TLS_CLIENT_CA_FILE")


def tls_problems(objects: list[Obj]) -> list[str]:
    """With ORCH_TLS_* set, the files are on a mounted Secret (the one a cert-manager
    Certificate writes, if the objects hold one), and every probe dials with TLS and, for
    mutual TLS, presents a certificate: native gRPC probes speak plaintext only. Without
    them, no probe dials with TLS."""
    config = settings(objects)
    spec = pod_spec(one(objects, "Deployment"))
    container = spec["containers"][0]
    probes = {kind: container.get(kind, {}) for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    problems: list[str] = []
    if not any(config.get(name) for name in TLS_SETTINGS):
        for kind, probe in probes.items():
            options = health_options(probe.get("exec", {}).get("command", [])) or {}
            if "--tls" in options or "--ca-file" in options:
                problems.append(f"{kind} dials with TLS but the server speaks plaintext")
        return problems
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", []) if m["name"] in secrets}
    certificates = {c["spec"]["secretName"] for c in objects if c["kind"] == "Certificate"}

    def on_secret(path: str) -> str | None:
        mount = next((m for directory, m in mounts.items() if path.startswith(directory.rstrip("/") + "/")), None)
        return secrets[mount["name"]] if mount is not None and mount.get("readOnly") else None

    for name in TLS_SETTINGS:
        path = config.get(name)
        if not path:
            problems.append(f"{name} is not set (TLS needs it with the others)")
        elif (secret := on_secret(path)) is None:
            problems.append(f"{name} {path} is not on a Secret mounted read-only")
        elif certificates and secret not in certificates:
            problems.append(f"{name} is on the Secret {secret!r}, which no Certificate writes")
    for kind, probe in probes.items():
        if "grpc" in probe:
            problems.append(f"{kind} is a native gRPC probe, which speaks plaintext only")
            continue
        options = health_options(probe.get("exec", {}).get("command", [])) or {}
        needed = ["--tls", "--ca-file"]
        if config.get("ORCH_TLS_CLIENT_CA_FILE"):
            needed += ["--cert-file", "--key-file"]
        missing = [option for option in needed if option not in options]
        if missing:
            problems.append(f"{kind} runs `orchestrator health` without {' '.join(missing)}")
        for option in ("--ca-file", "--cert-file", "--key-file"):
            if option in options and on_secret(options[option]) is None:
                problems.append(f"{kind}: {option} {options[option]} is not on a mounted Secret")
    return problems


def autoscaling_problems(objects: list[Obj]) -> list[str]:
    """A Deployment scaled by a HorizontalPodAutoscaler sets no replicas of its own: each
    apply would reset the count the autoscaler chose."""
    problems: list[str] = []
    for autoscaler in (obj for obj in objects if obj["kind"] == "HorizontalPodAutoscaler"):
        target = autoscaler["spec"]["scaleTargetRef"]
        for obj in objects:
            if obj["kind"] == target["kind"] and obj["metadata"]["name"] == target["name"] \
                    and "replicas" in obj["spec"]:
                problems.append(f"{target['kind']}/{target['name']} sets replicas {obj['spec']['replicas']} "
                                f"while the HorizontalPodAutoscaler {autoscaler['metadata']['name']} scales it")
    return problems


def port_problems(objects: list[Obj]) -> list[str]:
    """The gRPC and metrics ports agree everywhere: settings, container, Service,
    NetworkPolicy; no other port is open."""
    problems: list[str] = []
    config = settings(objects)
    if config.get("ORCH_HOST") != "0.0.0.0":
        problems.append(f"ORCH_HOST is {config.get('ORCH_HOST')!r}: the pod would not be reachable")
    if config.get("ORCH_PORT") != str(GRPC_PORT):
        problems.append(f"ORCH_PORT is {config.get('ORCH_PORT')!r}, not {GRPC_PORT}")
    if config.get("ORCH_METRICS_PORT") != str(METRICS_PORT):
        problems.append(f"ORCH_METRICS_PORT is {config.get('ORCH_METRICS_PORT')!r}, not {METRICS_PORT}")
    container = pod_spec(one(objects, "Deployment"))["containers"][0]
    ports = {port["name"]: port.get("containerPort") for port in container.get("ports", [])}
    if ports != {"grpc": GRPC_PORT, "metrics": METRICS_PORT}:
        problems.append(f"the container's ports are {container.get('ports')}, not only grpc:{GRPC_PORT} "
                        f"and metrics:{METRICS_PORT}")
    service = one(objects, "Service")["spec"]
    if service.get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"the Service is {service.get('type')}, not ClusterIP")
    service_ports = service.get("ports", [])
    expected_ports = [("grpc", GRPC_PORT, "grpc", "grpc"), ("metrics", METRICS_PORT, "metrics", "http")]
    if [(p.get("name"), p.get("port"), p.get("targetPort"), p.get("appProtocol")) for p in service_ports] \
            != expected_ports:
        problems.append(f"the Service's ports are {service_ports}, not grpc {GRPC_PORT} -> grpc (appProtocol grpc) "
                        f"and metrics {METRICS_PORT} -> metrics (appProtocol http)")
    policy = one(objects, "NetworkPolicy")["spec"]
    if policy.get("policyTypes") != ["Ingress"]:
        problems.append(f"the NetworkPolicy's policyTypes are {policy.get('policyTypes')}, not [Ingress]")
    ingress_ports = sorted(
        (port.get("port"), port.get("protocol", "TCP")) for rule in policy.get("ingress", []) for port in rule.get(
            "ports", [{"port": "ANY"}])
    )
    if ingress_ports != [(METRICS_PORT, "TCP"), (GRPC_PORT, "TCP")] \
            or any("from" in rule for rule in policy.get("ingress", [])):
        problems.append(f"the NetworkPolicy admits {ingress_ports}, not only TCP {METRICS_PORT} and {GRPC_PORT}")
    return problems


SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT),
                      "prometheus.io/path": "/metrics"}


def scrape_problems(objects: list[Obj]) -> list[str]:
    """Prometheus finds the metrics: the pods' prometheus.io/* annotations name the port the
    settings serve metrics on; a ServiceMonitor, where there is one, selects the Service and
    scrapes its metrics port; a dashboard ConfigMap is labelled for Grafana's sidecar and
    holds a dashboard."""
    problems: list[str] = []
    port = settings(objects).get("ORCH_METRICS_PORT")
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"].get("annotations", {})
    expected = {**SCRAPE_ANNOTATIONS, "prometheus.io/port": port}
    problems += [f"the pods' annotation {k} is {annotations.get(k)!r}, not {v!r}" for k, v in expected.items()
                 if annotations.get(k) != v]
    service = one(objects, "Service")
    service_ports = {p.get("name"): p for p in service["spec"].get("ports", [])}
    for monitor in (obj for obj in objects if obj["kind"] == "ServiceMonitor"):
        name = f"ServiceMonitor/{monitor['metadata']['name']}"
        spec = monitor.get("spec", {})
        selector = spec.get("selector", {}).get("matchLabels", {})
        labels = service["metadata"].get("labels", {})
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{name} selects {selector}, not the Service's labels {labels}")
        namespaces = spec.get("namespaceSelector", {}).get("matchNames")
        if monitor["metadata"].get("namespace") != service["metadata"].get("namespace") and \
                service["metadata"].get("namespace") not in (namespaces or []):
            problems.append(f"{name} is not in the Service's namespace and does not select it")
        endpoints = spec.get("endpoints", [])
        if not endpoints:
            problems.append(f"{name} has no endpoints")
        for endpoint in endpoints:
            target = service_ports.get(endpoint.get("port"), {})
            if str(target.get("port")) != port:
                problems.append(f"{name} scrapes the port {endpoint.get('port')!r}, not the Service's metrics port")
            if endpoint.get("path", "/metrics") != "/metrics":
                problems.append(f"{name} scrapes {endpoint['path']!r}, not /metrics")
    for dashboard in (obj for obj in objects if obj["kind"] == "ConfigMap"
                      and obj["metadata"]["name"] != "orchestrator-config"):
        name = f"ConfigMap/{dashboard['metadata']['name']}"
        if dashboard["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
            problems.append(f"{name} lacks the label grafana_dashboard: \"1\" Grafana's sidecar looks for")
        for key, text in dashboard.get("data", {}).items():
            try:
                panels = json.loads(text).get("panels")
            except ValueError as error:
                problems.append(f"{name}: {key} is not JSON: {error}")
                continue
            if not panels:
                problems.append(f"{name}: {key} is not a dashboard with panels")
    return problems


def grace_problems(objects: list[Obj], deployment: Obj | None = None) -> list[str]:
    """The kubelet waits longer than the preStop pause plus the service's own drain: the
    drain delay (the port open, NOT_SERVING) and the grace period for calls in flight.
    ``deployment``: the one to check, when the objects hold several (the workers)."""
    spec = pod_spec(deployment if deployment is not None else one(objects, "Deployment"))
    config = settings(objects)
    grace = float(config.get("ORCH_GRACE_PERIOD_SECONDS", "10"))
    delay = float(config.get("ORCH_DRAIN_DELAY_SECONDS", "0"))
    pause = _prestop_seconds(spec["containers"][0])
    termination = spec.get("terminationGracePeriodSeconds", 30)
    if termination <= pause + delay + grace:
        return [f"terminationGracePeriodSeconds {termination} is not longer than preStop {pause}s + "
                f"ORCH_DRAIN_DELAY_SECONDS {delay:g}s + ORCH_GRACE_PERIOD_SECONDS {grace:g}s"]
    return []


def _prestop_seconds(container: Obj) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    if len(command) == 2 and command[0] == "sleep":
        return float(command[1])
    return NO_PRESTOP_PAUSE


def image_problems(deployment: Obj, version: str) -> list[str]:
    problems: list[str] = []
    for container in pod_spec(deployment)["containers"]:
        image = container["image"]
        tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
        if "@sha256:" in image:
            continue
        if tag in ("", "latest"):
            problems.append(f"{container['name']}: image {image!r} is not pinned to a tag")
        elif tag != version:
            problems.append(f"{container['name']}: image tag {tag!r} is not the release {version!r}")
    return problems


def selector_problems(objects: list[Obj]) -> list[str]:
    """The Service, PodDisruptionBudget and NetworkPolicy select the Deployment's pods."""
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": one(objects, "Service")["spec"]["selector"],
        "PodDisruptionBudget": one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    }
    return [f"the {kind} selector {selector} does not select the pods ({labels})"
            for kind, selector in selectors.items() if not selector or any(labels.get(k) != v
                                                                            for k, v in selector.items())]
