"""The operator's log output: one handler on the root logger, text or JSON lines, for lakejob's
records and kopf's alike.

`lakejob.cli` calls `configure` before anything logs (`lakejob run --log-format/--log-level`,
LAKEJOB_LOG_FORMAT/LAKEJOB_LOG_LEVEL; the gateway in text). kopf, embedded with kopf.run, configures
no logging of its own (only its CLI does), so its records reach this handler too. Records about
one object carry its kind, namespace and name: ours through `about` (controllers.base logs each
state change with from, to and reason that way), kopf's per-object records through the object
reference its ObjectLogger attaches (`k8s_ref`).
"""
from __future__ import annotations

import copy
import json
import logging
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

FIELDS = "lakejob_fields"  # the LogRecord attribute `about` sets
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def about(fields: Mapping[str, str | None]) -> dict[str, Any]:
    """`extra=` for a log call about an object: kind, namespace, name, … become fields of its JSON line."""
    return {FIELDS: dict(fields)}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    ref = getattr(record, "k8s_ref", None)  # kopf's ObjectLogger: the object the record is about
    if isinstance(ref, Mapping):
        fields.update({k: ref[k] for k in ("kind", "namespace", "name") if ref.get(k)})
    fields.update(getattr(record, FIELDS, None) or {})
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the object's fields
    (kind, namespace, name, and from, to, reason for a state change), exception (its traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)  # never over the record's own four
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT; kopf's per-object records say which object first, as kopf's own format does
    (ours name it in the message)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, Mapping) and ref.get("name"):
            where = f"{ref['namespace']}/{ref['name']}" if ref.get("namespace") else str(ref["name"])
            record = copy.copy(record)  # the record goes on to other handlers unchanged
            record.msg = f"[{ref.get('kind') or '?'} {where}] {record.msg}"
        return super().format(record)


class _DemoteToDebug(logging.Filter):
    """kopf logs every handler call of every watch event at INFO ("Handler '…' succeeded."): at
    thousands of objects, most of the log. Those records become DEBUG: shown at --log-level=debug only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= logging.WARNING or logging.getLogger().isEnabledFor(record.levelno)


_DEMOTE = _DemoteToDebug()


def configure(log_format: str, level: str, stream: Any = None) -> logging.Handler:
    """Send every record at `level` and above to `stream` (stderr) as `log_format` ("text", "json")
    lines, replacing the root logger's handlers; returns the handler."""
    if log_format not in ("text", "json") or level not in LEVELS:
        raise ValueError(f"log format {log_format!r} / level {level!r}: expected text or json / "
                         f"one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # The root's level, not the handler's: a logger given its own lower level (the fault tests turn
    # on kopf's watch log at DEBUG) still gets through.
    root.setLevel(LEVELS[level])
    objects = logging.getLogger("kopf.objects")
    if _DEMOTE not in objects.filters:
        objects.addFilter(_DEMOTE)
    return handler
