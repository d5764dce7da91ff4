"""GetStatus: statistics, councils and plugins, core -> proto."""

from __future__ import annotations

from orchestrator.v1 import orchestrator_pb2 as pb
from orchestrator_core.council import CouncilInfo
from orchestrator_core.orchestrator import StatusSnapshot
from orchestrator_core.plugin_calls import PluginFailures
from orchestrator_core.plugins import FailedPlugin, PluginInfo
from orchestrator_core.statistics import RoleStatistics, Statistics
from orchestrator_core.work_queue import QueueDepth
from orchestrator_grpc.convert._common import (
    NOT_SERVING,
    SERVING,
)
from orchestrator_grpc.convert.results import usage_to_proto


def _role_statistics_to_proto(statistics: RoleStatistics) -> pb.RoleStatistics:
    return pb.RoleStatistics(
        deliberations=statistics.deliberations,
        failures=statistics.failures,
        mean_duration_seconds=statistics.mean_duration_seconds,
        p50_duration_seconds=statistics.p50_duration_seconds,
        p95_duration_seconds=statistics.p95_duration_seconds,
        p99_duration_seconds=statistics.p99_duration_seconds,
        latency_samples=statistics.latency_samples,
    )


def statistics_to_proto(statistics: Statistics, queue: QueueDepth | None = None) -> pb.Statistics:
    queue = queue or QueueDepth()
    return pb.Statistics(
        deliberations=statistics.deliberations,
        orchestrations=statistics.orchestrations,
        failures=statistics.failures,
        mean_duration_seconds=statistics.mean_duration_seconds,
        by_role={role: _role_statistics_to_proto(s) for role, s in statistics.by_role.items()},
        usage=usage_to_proto(statistics.usage),
        in_flight=statistics.in_flight,
        loop_stalls=statistics.loop_stalls,
        longest_loop_stall_seconds=statistics.longest_loop_stall_seconds,
        plugin_failures=[plugin_failures_to_proto(p) for p in statistics.plugin_failures],
        abandoned_plugin_threads=statistics.abandoned_plugin_threads,
        queue_pending=queue.pending,
        queue_in_flight=queue.in_flight,
        queue_redelivered=queue.redelivered,
    )


def plugin_failures_to_proto(failures: PluginFailures) -> pb.PluginFailures:
    return pb.PluginFailures(
        kind=failures.kind,
        name=failures.name,
        bugs=failures.bugs,
        timeouts=failures.timeouts,
        errors=failures.errors,
        loop_stalls=failures.loop_stalls,
    )


def council_to_proto(council: CouncilInfo) -> pb.CouncilInfo:
    return pb.CouncilInfo(
        role=council.role,
        backend=council.backend,
        agents=council.agents,
        ready=council.ready,
        detail=council.detail,
        circuit=council.circuit.value,
        endpoint_state=council.endpoint.state.value,
        endpoint_detail=council.endpoint.detail,
    )


def plugin_to_proto(plugin: PluginInfo) -> pb.PluginInfo:
    return pb.PluginInfo(
        name=plugin.name,
        version=plugin.version,
        hooks=list(plugin.hooks),
        agents=list(plugin.agents),
        checks=list(plugin.checks),
    )


def failed_plugin_to_proto(plugin: FailedPlugin) -> pb.FailedPlugin:
    return pb.FailedPlugin(name=plugin.name, version=plugin.version, error=plugin.error)


def status_to_proto(snapshot: StatusSnapshot) -> pb.GetStatusResponse:
    return pb.GetStatusResponse(
        status=SERVING if snapshot.serving else NOT_SERVING,
        version=snapshot.version,
        uptime_seconds=snapshot.uptime_seconds,
        statistics=statistics_to_proto(snapshot.statistics, snapshot.queue),
        councils=[council_to_proto(c) for c in snapshot.councils],
        plugins=[plugin_to_proto(p) for p in snapshot.plugins],
        failed_plugins=[failed_plugin_to_proto(p) for p in snapshot.failed_plugins],
    )
