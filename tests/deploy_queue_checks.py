"""The rules of the work-queue objects of deploy/k8s (components/queue, worker-keda,
worker-hpa: the scaled overlays), as functions listing what breaks them, like deploy_checks.

The queue's objects are NATS (``app.kubernetes.io/name: nats``) and the workers
(``orchestrator-worker``); :func:`fronts` leaves them out, so that deploy_checks' rules of
the gRPC service apply to the scaled overlays' fronts unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from deploy_checks import METRICS_PORT, SCRAPE_ANNOTATIONS, pod_spec, settings

Obj = dict[str, Any]

NAME_LABEL = "app.kubernetes.io/name"
NATS = "nats"
WORKER = "orchestrator-worker"
QUEUE_NAMES = frozenset({NATS, WORKER})
NATS_CLIENT_PORT = 4222
NATS_MONITOR_PORT = 8222
KEDA_API = "keda.sh/v1alpha1"
# The fields of a ScaledObject's spec and of a nats-jetstream trigger's metadata, as KEDA
# (2.8+) documents them: the Kubernetes schemas do not know the kind.
SCALED_OBJECT_SPEC = frozenset({"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                                "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced",
                                "triggers"})
JETSTREAM_METADATA = frozenset({"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold",
                                "activationLagThreshold", "useHttps"})
JETSTREAM_REQUIRED = frozenset({"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"})
PINNED_VERSION = re.compile(r":\d+\.\d+\.\d+(-[\w.]+)?$")


def label(obj: Obj) -> str | None:
    name: str | None = obj["metadata"].get("labels", {}).get(NAME_LABEL)
    return name


def fronts(objects: list[Obj]) -> list[Obj]:
    """The objects of the gRPC service (the fronts): all but NATS's and the workers'."""
    return [obj for obj in objects if label(obj) not in QUEUE_NAMES]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind}/{name}, not 1"
    return found[0]


def nats_config(objects: list[Obj]) -> str:
    """The NATS server's configuration file, from the ConfigMap the StatefulSet mounts."""
    spec = pod_spec(named(objects, "StatefulSet", NATS))
    (config_map,) = [v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v]
    (text,) = named(objects, "ConfigMap", config_map)["data"].values()
    return str(text)


def _setting(config: str, name: str) -> str | None:
    found = re.search(rf"^\s*{name}\s*[:=]\s*(\S+)\s*$", config, re.MULTILINE)
    return found.group(1) if found else None


def nats_problems(objects: list[Obj]) -> list[str]:
    """NATS runs JetStream on a persistent volume: the pinned official image, one replica, a
    headless governing Service, the store directory on the claim template, the configured
    ports the container's and the client Service's, ORCH_NATS_URL dialling that Service."""
    problems: list[str] = []
    statefulset = named(objects, "StatefulSet", NATS)
    spec = pod_spec(statefulset)
    (container,) = spec["containers"]
    if not re.fullmatch(r"nats" + PINNED_VERSION.pattern, container["image"]):
        problems.append(f"NATS's image {container['image']!r} is not the official one pinned to a version")
    if statefulset["spec"].get("replicas") != 1:
        problems.append("NATS runs more than one server, which the one-replica stream does not use")
    governing = statefulset["spec"].get("serviceName")
    headless = [s for s in objects if s["kind"] == "Service" and s["metadata"]["name"] == governing]
    if not headless or headless[0]["spec"].get("clusterIP") != "None":
        problems.append(f"the StatefulSet's serviceName {governing!r} is not a headless Service")
    config = nats_config(objects)
    if not re.search(r"^\s*jetstream\s*[:=]?\s*\{", config, re.MULTILINE):
        problems.append("the NATS configuration does not enable JetStream")
    store = _setting(config, "store_dir")
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"].get("volumeClaimTemplates", [])}
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] in claims]
    if store is None or not any(store.rstrip("/").startswith(m["mountPath"].rstrip("/")) for m in mounts):
        problems.append(f"the JetStream store {store!r} is not on a volume of the claim templates {sorted(claims)}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    expected = {"client": int(_setting(config, "port") or 4222), "monitor": int(_setting(config, "http_port") or 0)}
    if ports != expected or expected != {"client": NATS_CLIENT_PORT, "monitor": NATS_MONITOR_PORT}:
        problems.append(f"NATS's container ports {ports} are not the configured {expected}")
    service = named(objects, "Service", NATS)
    service_ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    if service_ports != {"client": (NATS_CLIENT_PORT, "client"), "monitor": (NATS_MONITOR_PORT, "monitor")}:
        problems.append(f"the Service {NATS}'s ports are {service_ports}")
    url = settings(objects).get("ORCH_NATS_URL")
    if url != f"nats://{NATS}:{NATS_CLIENT_PORT}":
        problems.append(f"ORCH_NATS_URL is {url!r}, not the Service {NATS}'s client port")
    return problems


def concurrency(worker: Obj) -> int | None:
    """How many deliberations a worker Deployment's pods run at once (their ORCH_QUEUE_WORKERS)."""
    (container,) = pod_spec(worker)["containers"]
    value = {e["name"]: e.get("value") for e in container.get("env", [])}.get("ORCH_QUEUE_WORKERS")
    return int(value) if value is not None and value.isdigit() else None


def worker_problems(objects: list[Obj]) -> list[str]:
    """The workers run ``orchestrator worker`` on the fronts' image, settings and secrets,
    several deliberations at once, open only the metrics port (annotated for Prometheus),
    and go one at a time in a node drain; the fronts run no deliberations of their own
    (ORCH_QUEUE_WORKERS=0), which the workers do not inherit."""
    problems: list[str] = []
    front = pod_spec(named(objects, "Deployment", "orchestrator"))["containers"][0]
    (worker,) = pod_spec(named(objects, "Deployment", WORKER))["containers"]
    if worker.get("args") != ["worker"]:
        problems.append(f"the worker runs {worker.get('args')}, not `orchestrator worker`")
    for field in ("image", "envFrom"):
        if worker.get(field) != front.get(field):
            problems.append(f"the worker's {field} {worker.get(field)!r} is not the fronts' {front.get(field)!r}")
    ports = {p["name"]: p["containerPort"] for p in worker.get("ports", [])}
    if ports != {"metrics": METRICS_PORT} or settings(objects).get("ORCH_METRICS_PORT") != str(METRICS_PORT):
        problems.append(f"the worker's ports are {ports}, not only the metrics port {METRICS_PORT}")
    template = named(objects, "Deployment", WORKER)["spec"]["template"]
    if template["metadata"].get("annotations") != SCRAPE_ANNOTATIONS:
        problems.append("Prometheus does not find the workers' metrics by annotation")
    labels = template["metadata"]["labels"]
    budget = named(objects, "PodDisruptionBudget", WORKER)["spec"]
    if budget.get("maxUnavailable") != 1 or not _selects(budget["selector"], labels):
        problems.append("no PodDisruptionBudget lets the workers go one at a time")
    front_env = {e["name"]: e.get("value") for e in front.get("env", [])}
    if front_env.get("ORCH_QUEUE_WORKERS") != "0":
        problems.append("the fronts run deliberations themselves (ORCH_QUEUE_WORKERS is not 0 in their env)")
    at_once = concurrency(named(objects, "Deployment", WORKER))
    if at_once is None or at_once < 1:
        problems.append("the workers do not say how many deliberations they run at once (ORCH_QUEUE_WORKERS)")
    return problems


def autoscaler_problems(objects: list[Obj]) -> list[str]:
    """Each autoscaler (HorizontalPodAutoscaler, KEDA ScaledObject) scales a Deployment of the
    objects that sets no replicas of its own, and no Deployment has two: KEDA scales through
    an autoscaler of its own, and two undo each other's counts."""
    problems: list[str] = []
    scalers: dict[str, list[str]] = {}
    for scaler in (o for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")):
        target = scaler["spec"]["scaleTargetRef"]
        kind, name = target.get("kind", "Deployment"), target["name"]
        this = f"{scaler['kind']}/{scaler['metadata']['name']}"
        deployments = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
        if not deployments:
            problems.append(f"{this} scales {kind}/{name}, which is not there")
        elif "replicas" in deployments[0]["spec"]:
            problems.append(f"{kind}/{name} sets replicas while {this} scales it")
        scalers.setdefault(f"{kind}/{name}", []).append(this)
    problems += [f"{target} is scaled by {' and '.join(by)}" for target, by in scalers.items() if len(by) > 1]
    return problems


def scaled_object_problems(objects: list[Obj], stream: str, consumer: str) -> list[str]:
    """A KEDA ScaledObject with KEDA's fields only, keeping at least one worker, on one
    nats-jetstream trigger naming the code's stream and consumer, the default account, a lag
    threshold of what one worker runs at once, and the monitoring port of the NATS Service
    in the objects' namespace."""
    problems: list[str] = []
    for scaled in (o for o in objects if o["kind"] == "ScaledObject"):
        name = f"ScaledObject/{scaled['metadata']['name']}"
        spec = scaled["spec"]
        if scaled["apiVersion"] != KEDA_API:
            problems.append(f"{name} is {scaled['apiVersion']}, not {KEDA_API}")
        if set(spec) - SCALED_OBJECT_SPEC:
            problems.append(f"{name} has fields KEDA does not know: {sorted(set(spec) - SCALED_OBJECT_SPEC)}")
        if spec.get("minReplicaCount", 0) < 1 or spec.get("maxReplicaCount", 100) <= spec.get("minReplicaCount", 0):
            problems.append(f"{name} scales between {spec.get('minReplicaCount', 0)} and "
                            f"{spec.get('maxReplicaCount', 100)}: at least one worker, and room to grow")
        triggers = spec.get("triggers", [])
        if [t.get("type") for t in triggers] != ["nats-jetstream"]:
            problems.append(f"{name}'s triggers are {[t.get('type') for t in triggers]}, not one nats-jetstream")
            continue
        metadata = triggers[0].get("metadata", {})
        if set(metadata) - JETSTREAM_METADATA or JETSTREAM_REQUIRED - set(metadata):
            problems.append(f"{name}'s trigger metadata has {sorted(metadata)}")
        if not all(isinstance(value, str) for value in metadata.values()):
            problems.append(f"{name}'s trigger metadata values are not all strings")
        expected = {"stream": stream, "consumer": consumer, "account": "$G"}
        problems += [f"{name}'s trigger names {key} {metadata.get(key)!r}, not {value!r}"
                     for key, value in expected.items() if metadata.get(key) != value]
        target = named(objects, spec["scaleTargetRef"].get("kind", "Deployment"), spec["scaleTargetRef"]["name"])
        if metadata.get("lagThreshold") != str(concurrency(target)):
            problems.append(f"{name}'s lagThreshold {metadata.get('lagThreshold')!r} is not what a worker runs "
                            f"at once ({concurrency(target)})")
        namespace = scaled["metadata"].get("namespace")
        endpoint = f"{NATS}.{namespace}.svc:{NATS_MONITOR_PORT}"
        full = endpoint.replace(".svc:", ".svc.cluster.local:")
        if metadata.get("natsServerMonitoringEndpoint") not in (endpoint, full):
            problems.append(f"{name} polls {metadata.get('natsServerMonitoringEndpoint')!r}, not {endpoint!r}")
    return problems


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions with In) selects ``labels``."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] != "In" or labels.get(expression["key"]) not in expression["values"]:
            return False
    return bool(selector)


def network_problems(objects: list[Obj]) -> list[str]:
    """NATS admits its client port from the fronts and the workers only, its monitoring port
    from a namespace (KEDA's) only; the workers admit their metrics port only."""
    problems: list[str] = []
    policy = named(objects, "NetworkPolicy", NATS)["spec"]
    nats_labels = named(objects, "StatefulSet", NATS)["spec"]["template"]["metadata"]["labels"]
    if not _selects(policy["podSelector"], nats_labels) or policy.get("policyTypes") != ["Ingress"]:
        problems.append("the NetworkPolicy nats does not govern the NATS pods' ingress")
    pods = {name: named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
            for name in ("orchestrator", WORKER)}
    for rule in policy.get("ingress", []):
        ports = sorted(p["port"] for p in rule.get("ports", []))
        if "from" not in rule or not ports:
            problems.append(f"the NetworkPolicy nats admits {ports or 'every port'} from everywhere")
            continue
        if ports == [NATS_CLIENT_PORT]:
            admitted = {name for name, labels in pods.items()
                        if any(_selects(peer.get("podSelector", {}), labels) and "namespaceSelector" not in peer
                               for peer in rule["from"])}
            if admitted != set(pods):
                problems.append(f"NATS's client port admits {sorted(admitted)}, not the fronts and the workers")
        elif ports != [NATS_MONITOR_PORT] or not all("namespaceSelector" in peer for peer in rule["from"]):
            problems.append(f"the NetworkPolicy nats admits {ports} from {rule['from']}")
    worker = named(objects, "NetworkPolicy", WORKER)["spec"]
    admitted = sorted((p["port"], p.get("protocol", "TCP")) for rule in worker.get("ingress", [])
                      for p in rule.get("ports", [{"port": "ANY"}]))
    if not _selects(worker["podSelector"], pods[WORKER]) or worker.get("policyTypes") != ["Ingress"] \
            or admitted != [(METRICS_PORT, "TCP")]:
        problems.append(f"the workers' NetworkPolicy admits {admitted}, not only TCP {METRICS_PORT}")
    return problems
