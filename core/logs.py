"""One log format for every process: a JSON object per line (``LOG_FORMAT=json``,
what log shippers want) or the plain human format (``LOG_FORMAT=plain``, what
`skillstream up` uses unless told otherwise, and what its dead-child report
reads)."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from core.settings import Settings

PLAIN = "%(asctime)s %(name)s %(levelname)s %(message)s"
# Set with `log.info(..., extra={...})` where a record concerns one of these.
CONTEXT_FIELDS = ("tenant_id", "step", "topic", "partition", "offset", "table")


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup_logging(process: str, settings: Settings, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
