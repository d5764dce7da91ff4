"""How the service's log lines look, and the ids that join them to records and traces.

Every line logged while a deliberation runs carries its id, whoever logs it (the core's
warnings included): :func:`log_fields` binds ids to the current context, which the tasks a
deliberation starts inherit (and the threads its off-loop plugin calls run in copy), and
:class:`CorrelationFilter`, on the handler, copies them onto each record together with the
current trace and span ids when tracing is on.

Two formats (``ORCH_LOG_FORMAT``):

- ``text`` (the default): ``TIME LEVEL LOGGER: [deliberation ID] MESSAGE``, the bracket only
  on the lines of a deliberation;
- ``json``: one JSON object per line, with the keys ``time`` (ISO 8601, UTC), ``level``,
  ``logger``, ``message``; then, when known, ``deliberation_id``, ``role``, ``agent_id``,
  ``phase``, ``trace_id`` and ``span_id``; then the fields the line was logged with
  (``extra=``, e.g. an event's ``event``, ``outcome``, ``duration_seconds``); and
  ``exc_info`` (a traceback, as text) and ``stack_info`` when the line has them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from orchestrator_core.settings import Settings
from orchestrator_grpc.observability.tracing import current_trace_ids

__all__ = [
    "CONTEXT_KEYS",
    "BoundFields",
    "CorrelationFilter",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "log_fields",
    "log_handler",
]

LogFormat = Literal["text", "json"]

CONTEXT_KEYS = ("deliberation_id", "role", "agent_id", "phase")
"""The ids :func:`log_fields` binds, in the order a JSON line shows them."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(deliberation)s%(message)s"
"""The format of a text line; ``deliberation`` is ``[deliberation ID] `` or nothing."""

_BOUND: ContextVar[BoundFields | None] = ContextVar("orchestrator_log_fields", default=None)
"""The innermost ids bound to the current context; each link holds the one it was bound over."""

# The attributes every LogRecord has: anything else on a record was logged as ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class BoundFields:
    """A link of the ids bound to the current context: :meth:`bind` makes it the innermost
    until :meth:`unbind`, and its :meth:`ids` are read only when a line is logged.

    Binding costs a context variable's get, set and reset, whatever the ids: the event log
    binds one around every deliberation, phase, agent call and check, and most of them end
    without a line being logged. A link is bound once at a time (it keeps its own token)."""

    __slots__ = ("_outer", "_token")

    def __init__(self) -> None:
        self._outer: BoundFields | None = None
        self._token: Token[BoundFields | None] | None = None

    def ids(self) -> Iterable[tuple[str, str]]:
        """Its (name, value) pairs, names from :data:`CONTEXT_KEYS`; empty values are skipped."""
        raise NotImplementedError

    def bind(self) -> None:
        self._outer = _BOUND.get()
        self._token = _BOUND.set(self)

    def unbind(self) -> None:
        if self._token is not None:
            _BOUND.reset(self._token)
            self._token = None


def bound_fields() -> dict[str, str]:
    """The ids bound to the current context, an inner link's over an outer's."""
    links = []
    link = _BOUND.get()
    while link is not None:
        links.append(link)
        link = link._outer
    fields: dict[str, str] = {}
    for link in reversed(links):
        fields.update((name, value) for name, value in link.ids() if value)
    return fields


class log_fields(BoundFields):
    """Bind ``fields`` (a subset of :data:`CONTEXT_KEYS`) to every line logged in this
    context until the block ends, over those bound already; empty values are skipped."""

    __slots__ = ("_fields",)

    def __init__(self, **fields: str) -> None:
        super().__init__()
        self._fields = fields

    def ids(self) -> Iterable[tuple[str, str]]:
        return self._fields.items()

    def __enter__(self) -> None:
        self.bind()

    def __exit__(self, *exc_info: object) -> None:
        self.unbind()


class CorrelationFilter(logging.Filter):
    """Puts the ids bound to the current context, and the current trace and span ids, on
    each record (a value the line was logged with wins). Filters nothing out."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in bound_fields().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        ids = current_trace_ids()
        if ids is not None and not hasattr(record, "trace_id"):
            record.trace_id, record.span_id = ids
        return True


class TextFormatter(logging.Formatter):
    """The service's text lines, with ``[deliberation ID]`` before the message of a line
    logged during a deliberation."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        deliberation_id = getattr(record, "deliberation_id", "")
        return TEXT_FORMAT % {
            **record.__dict__, "deliberation": f"[deliberation {deliberation_id}] " if deliberation_id else ""
        }


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback's newlines are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*CONTEXT_KEYS, "trace_id", "span_id"):
            value = getattr(record, name, None)
            if value:
                line[name] = value
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRIBUTES and name not in line:
                line[name] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _iso_utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``log_format`` lines to ``stream`` (stderr), the ids on each."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(CorrelationFilter())
    return handler


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Log at ``settings.log_level``, in ``settings.log_format``, to ``stream`` (stderr)
    (as :func:`logging.basicConfig` does: not when the root logger has handlers already)."""
    logging.basicConfig(level=settings.log_level, handlers=[log_handler(settings.log_format, stream)])
