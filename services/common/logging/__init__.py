"""structlog, configured once per process, with redaction of restricted detail.

Every line the process writes - our own structlog calls and stdlib records from
uvicorn, FastStream, aiokafka and SQLAlchemy - goes through the same processor
chain and ends as one JSON object per line (or a readable console line on a
TTY). The chain always ends in `redact_restricted` before anything renders, so a
restricted value cannot reach a log line by any route that we control.

`redaction` holds what is redacted and how; `setup` the chain, handlers, the
FastStream adapter and context binding; `writer` the handler that writes the JSON
lines, a loop turn's lines at a time. Import from here.
"""

from __future__ import annotations

from services.common.logging.redaction import (
    REDACTED,
    RESTRICTED_KEYS,
    add_restricted_keys,
    forget_sensitive_value,
    forget_sensitive_values,
    holding_sensitive_values,
    is_restricted_key,
    redact_restricted,
    register_sensitive_value,
    register_sensitive_values,
    scrub_text,
)
from services.common.logging.setup import (
    FastStreamLogger,
    RequestLine,
    bind_context,
    bound,
    clear_context,
    configure_logging,
    faststream_logger,
    get_logger,
    info_on_request_line,
    request_line,
)

__all__ = [
    "REDACTED",
    "RESTRICTED_KEYS",
    "FastStreamLogger",
    "RequestLine",
    "add_restricted_keys",
    "bind_context",
    "bound",
    "clear_context",
    "configure_logging",
    "faststream_logger",
    "forget_sensitive_value",
    "forget_sensitive_values",
    "get_logger",
    "holding_sensitive_values",
    "info_on_request_line",
    "is_restricted_key",
    "redact_restricted",
    "register_sensitive_value",
    "register_sensitive_values",
    "request_line",
    "scrub_text",
]
