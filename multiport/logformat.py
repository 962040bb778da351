"""How `multiport serve` writes its log: text lines, or one JSON object a line.

Every line of the process goes through the root handler set here (uvicorn's loggers too:
`ports.py` gives uvicorn no logging config of its own), so `--log-format json` covers all
of them. A request line (`requestlog.py`) adds its fields to the JSON object.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import msgspec

__all__ = ["JsonFormatter", "configure"]

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
_encode = msgspec.json.Encoder().encode


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...}`; a request line's fields at the top."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        line: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


def configure(*, verbose: bool, log_format: str = "text") -> None:
    """The process's log: warnings, multiport's own lines (the request log among them), and
    with `verbose` every library's info lines; as text or JSON."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT, datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("multiport").setLevel(logging.INFO)
