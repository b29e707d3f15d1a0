"""RFC 9457 problem+json errors, request guards and correlation ids for FastAPI.

Every error a service returns - ours, Starlette's, validation, a database outage,
a bug - leaves as `application/problem+json`, and none of them echoes request
input or exception text, because either may hold restricted detail.

`errors` holds `Problem` and its common kinds; `middleware` the correlation id and
body guard; `handlers` what turns every exception into a problem. Import from here.
"""

from __future__ import annotations

# One correlation contextvar per process, re-exported for callers of this package.
from services.common.cloudevents import current_correlation_id
from services.common.problems.errors import (
    CORRELATION_ID_HEADER,
    PROBLEM_JSON,
    PROBLEM_TYPE_BASE,
    REQUEST_ID_HEADER,
    Problem,
    bad_request,
    conflict,
    forbidden,
    not_found,
    payload_too_large,
    problem_response,
    problem_type,
    service_unavailable,
    unauthorized,
    unsupported_media_type,
)
from services.common.problems.handlers import install_problem_handlers, is_database_unavailable
from services.common.problems.middleware import (
    BodyGuardMiddleware,
    CorrelationIdMiddleware,
    get_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
)

__all__ = [
    "CORRELATION_ID_HEADER",
    "PROBLEM_JSON",
    "PROBLEM_TYPE_BASE",
    "REQUEST_ID_HEADER",
    "BodyGuardMiddleware",
    "CorrelationIdMiddleware",
    "Problem",
    "bad_request",
    "conflict",
    "current_correlation_id",
    "forbidden",
    "get_correlation_id",
    "install_problem_handlers",
    "is_database_unavailable",
    "is_valid_correlation_id",
    "new_correlation_id",
    "not_found",
    "payload_too_large",
    "problem_response",
    "problem_type",
    "service_unavailable",
    "unauthorized",
    "unsupported_media_type",
]
