"""What an operator sees of a running service: Prometheus metrics, OpenTelemetry traces and
structured logs, composed for the server by :func:`observability_for`."""

from orchestrator_grpc.observability.composition import Observability, observability_for

__all__ = ["Observability", "observability_for"]
