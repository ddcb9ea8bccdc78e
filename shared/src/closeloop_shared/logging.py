"""JSON-lines logging for every service.

Log records carry event names and ids, never customer text or secrets: callers
pass structured fields, and two processors are the second line of defence:
:func:`_drop_sensitive_fields` removes any field whose name says it holds content or
credentials, and :func:`_redact_personal_data` masks e-mail addresses, phone numbers,
card and ID numbers wherever else they appear (a library's message, an exception text).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from closeloop_shared.redaction import DEFAULT_REDACTOR

_SENSITIVE_KEYS = frozenset(
    {
        "text",
        "body",
        "subject",
        "email",
        "phone",
        "name",
        "secret",
        "password",
        "token",
        "authorization",
        "api_key",
        "signature",
    }
)


def _drop_sensitive_fields(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in _SENSITIVE_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


# Fields the logging setup itself writes: never personal data, so not worth scanning.
_OWN_FIELDS = frozenset({"timestamp", "level", "logger", "service"})


def _redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask personal data in every value, the rendered exception included (it runs after
    ``format_exc_info``, and a driver's error text can quote the row it refused)."""
    for key, value in event_dict.items():
        if key not in _OWN_FIELDS:
            event_dict[key] = DEFAULT_REDACTOR.redact(value)
    return event_dict


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and the standard library (uvicorn, aiokafka) to JSON lines on stdout."""
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_sensitive_fields,
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_personal_data,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log would print query strings (they may hold tokens);
    # the request-metrics middleware records method, route and status instead.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO: webhook URLs carry credentials (Slack's
    # path, DingTalk's access_token), and one line per delivery is noise besides.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
