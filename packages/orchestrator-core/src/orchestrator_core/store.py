"""Deliberation records (kept for imports that predate :mod:`orchestrator_core.records`)."""

from orchestrator_core.records import (
    DeliberationRecord,
    DeliberationStore,
    RecordPage,
    RecordQuery,
    RecordStatus,
    SQLiteStore,
)
from orchestrator_core.records.store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "DeliberationRecord",
    "DeliberationStore",
    "RecordPage",
    "RecordQuery",
    "RecordStatus",
    "SQLiteStore",
]
