"""The scaled overlays of deploy/k8s: NATS with JetStream on a persistent volume, gRPC fronts
that only accept, stream and answer, `orchestrator worker` pods scaled by exactly one
autoscaler (KEDA on the consumer's lag in `scaled`, CPU in `scaled-hpa`), the restricted
pod security settings and network policies around NATS. Rendering, the Kubernetes schemas
and the fronts' own rules are in test_deploy_manifests.py, over every overlay.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_checks import (
    grace_problems,
    image_problems,
    one,
    pod_security_problems,
    pod_spec,
    project_version,
    settings,
    writable_path_problems,
)
from deploy_kustomize import RENDERERS, Obj, rendered
from deploy_queue_checks import (
    NATS,
    WORKER,
    autoscaler_problems,
    named,
    nats_config,
    nats_problems,
    network_problems,
    scaled_object_problems,
    worker_problems,
)

from orchestrator_grpc.jetstream.queue import CONSUMER, STREAM

SCALED = ("scaled", "scaled-hpa")
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@pytest.fixture(params=[(o, r) for o in SCALED for r in RENDERERS], ids=lambda p: f"{p[0]}-{p[1]}")
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    overlay, renderer = request.param
    return rendered(overlay, renderer)


def autoscalers_of(objects: list[Obj], name: str) -> list[str]:
    return [o["kind"] for o in objects if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
            and o["spec"]["scaleTargetRef"]["name"] == name]


@pytest.mark.parametrize("renderer", RENDERERS)
def test_keda_scales_the_workers_in_scaled_and_an_hpa_in_scaled_hpa_never_both(renderer: str) -> None:
    keda, hpa = rendered("scaled", renderer), rendered("scaled-hpa", renderer)
    assert autoscalers_of(keda, WORKER) == ["ScaledObject"]
    assert autoscalers_of(hpa, WORKER) == ["HorizontalPodAutoscaler"]
    # The fronts keep ha's autoscaler on CPU in both.
    assert autoscalers_of(keda, "orchestrator") == autoscalers_of(hpa, "orchestrator") == ["HorizontalPodAutoscaler"]
    assert autoscaler_problems(keda) == autoscaler_problems(hpa) == []


def test_the_scaled_object_follows_the_consumer_the_workers_pull_from(objects: list[Obj]) -> None:
    """The trigger names the stream and consumer of the service's own JetStream queue."""
    assert (STREAM, CONSUMER) == ("ORCHESTRATOR_WORK", "orchestrator-workers")
    assert scaled_object_problems(objects, STREAM, CONSUMER) == []


@pytest.mark.parametrize("renderer", RENDERERS)
def test_the_scaled_object_in_full(renderer: str) -> None:
    scaled = one(rendered("scaled", renderer), "ScaledObject")
    assert scaled["metadata"]["namespace"] == "orchestrator"
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKER}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 10)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger == {"type": "nats-jetstream", "metadata": {
        "natsServerMonitoringEndpoint": "nats.orchestrator.svc:8222", "account": "$G", "stream": STREAM,
        "consumer": CONSUMER, "lagThreshold": "4", "useHttps": "false",
    }}


def test_nats_runs_jetstream_on_a_persistent_volume(objects: list[Obj]) -> None:
    assert nats_problems(objects) == []
    (claim,) = named(objects, "StatefulSet", NATS)["spec"]["volumeClaimTemplates"]
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}


def test_nats_server_accepts_the_configuration(objects: list[Obj], tmp_path: Path) -> None:
    """`nats-server -t` parses the file as the pod's server will, refusing unknown fields."""
    config = tmp_path / "nats-server.conf"
    config.write_text(nats_config(objects), encoding="utf-8")
    checked = subprocess.run([NATS_SERVER, "-c", str(config), "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    config.write_text(nats_config(objects).replace("store_dir", "store_directory"), encoding="utf-8")
    refused = subprocess.run([NATS_SERVER, "-c", str(config), "-t"], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "store_directory" in refused.stderr


def test_workers_run_orchestrator_worker_and_the_fronts_only_accept(objects: list[Obj]) -> None:
    assert worker_problems(objects) == []
    assert settings(objects)["ORCH_NATS_URL"] == "nats://nats:4222"


def test_workers_and_nats_follow_the_restricted_standard_as_uid_1000(objects: list[Obj]) -> None:
    worker = named(objects, "Deployment", WORKER)
    assert pod_security_problems(worker) == []
    assert pod_security_problems(named(objects, "StatefulSet", NATS)) == []
    assert writable_path_problems(worker, settings(objects)["ORCH_DATABASE_PATH"]) == []
    assert image_problems(worker, project_version()) == []
    assert grace_problems(objects, worker) == []
    # No probe: a worker has no port, and its queue consumer is its health (see the manifest).
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(pod_spec(worker)["containers"][0])


def test_only_fronts_and_workers_reach_nats_and_nothing_reaches_the_workers(objects: list[Obj]) -> None:
    assert network_problems(objects) == []


# The rules catch what they are meant to: each mutation breaks one.


def _mutated(mutate: Callable[[list[Obj]], None], overlay: str = "scaled") -> list[Obj]:
    objects = rendered(overlay, "builtin")
    mutate(objects)
    return objects


def test_a_trigger_on_another_stream_or_an_http_endpoint_elsewhere_is_caught() -> None:
    def retarget(objects: list[Obj]) -> None:
        metadata = one(objects, "ScaledObject")["spec"]["triggers"][0]["metadata"]
        metadata["stream"] = "WORK"
        metadata["natsServerMonitoringEndpoint"] = "nats.nats.svc:8222"

    assert scaled_object_problems(_mutated(retarget), STREAM, CONSUMER) == [
        "ScaledObject/orchestrator-worker's trigger names stream 'WORK', not 'ORCHESTRATOR_WORK'",
        "ScaledObject/orchestrator-worker polls 'nats.nats.svc:8222', not 'nats.orchestrator.svc:8222'",
    ]


def test_a_worker_deployment_under_two_autoscalers_is_caught() -> None:
    hpa = named(rendered("scaled-hpa", "builtin"), "HorizontalPodAutoscaler", WORKER)
    assert autoscaler_problems(_mutated(lambda objects: objects.append(hpa))) == [
        "Deployment/orchestrator-worker is scaled by ScaledObject/orchestrator-worker and "
        "HorizontalPodAutoscaler/orchestrator-worker"
    ]


def test_workers_left_out_of_nats_are_caught() -> None:
    def narrow(objects: list[Obj]) -> None:
        rule = named(objects, "NetworkPolicy", NATS)["spec"]["ingress"][0]
        rule["from"][0]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}

    assert network_problems(_mutated(narrow)) == [
        "NATS's client port admits ['orchestrator'], not the fronts and the workers"
    ]


def test_a_lag_threshold_other_than_a_workers_concurrency_is_caught() -> None:
    def serialise(objects: list[Obj]) -> None:
        container = pod_spec(named(objects, "Deployment", WORKER))["containers"][0]
        container["env"] = [{"name": "ORCH_QUEUE_WORKERS", "value": "1"}]

    assert scaled_object_problems(_mutated(serialise), STREAM, CONSUMER) == [
        "ScaledObject/orchestrator-worker's lagThreshold '4' is not what a worker runs at once (1)"
    ]


def test_an_unpinned_nats_or_a_store_off_the_volume_is_caught() -> None:
    def loosen(objects: list[Obj]) -> None:
        statefulset = named(objects, "StatefulSet", NATS)
        pod_spec(statefulset)["containers"][0]["image"] = "nats:latest"
        config = named(objects, "ConfigMap", "nats-config")["data"]
        config["nats-server.conf"] = config["nats-server.conf"].replace("/data/jetstream", "/tmp/jetstream")

    assert nats_problems(_mutated(loosen)) == [
        "NATS's image 'nats:latest' is not the official one pinned to a version",
        "the JetStream store '/tmp/jetstream' is not on a volume of the claim templates ['data']",
    ]
