"""Deliberation records: what they hold, where they are kept, and how they are written.

``store_from_settings`` picks the backend (SQLite by default, PostgreSQL by URL);
:class:`~orchestrator_core.records.writer.RecordWriter` writes a record as its deliberation
goes; :class:`~orchestrator_core.records.upkeep.RecordUpkeep` keeps leases, interrupts
records of dead processes and applies retention.
"""

from orchestrator_core.records.model import (
    CouncilSeat,
    DeliberationRecord,
    PhaseTiming,
    RecordedCheck,
    RecordPage,
    RecordQuery,
    RecordStatus,
)
from orchestrator_core.records.sqlite import SQLiteStore
from orchestrator_core.records.store import DeliberationStore

__all__ = [
    "CouncilSeat",
    "DeliberationRecord",
    "DeliberationStore",
    "PhaseTiming",
    "RecordPage",
    "RecordQuery",
    "RecordStatus",
    "RecordedCheck",
    "SQLiteStore",
]
