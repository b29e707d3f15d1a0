"""Intake's errors as RFC 9457 problems: 404, 409 with a stable slug, 401 signature, 400."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

from services.common.cloudevents import current_correlation_id
from services.common.problems import (
    Problem,
    bad_request,
    not_found,
    problem_response,
    problem_type,
)
from services.common.signing import SIGNATURE_HEADER
from services.intake.domain import (
    IntakeConflict,
    IntakeNotFound,
    RestrictedTermInReleasable,
    SignatureRejected,
)
from services.intake.repository import InvalidCursor

__all__ = ["install_error_handlers", "signature_problem"]

_SIGNATURE_DETAIL = {
    "missing": f"This service requires an {SIGNATURE_HEADER} header on every submission.",
    "malformed": f"The {SIGNATURE_HEADER} header must read t=<unix time>,v2=<hex HMAC-SHA256>.",
    "stale": "The signature is too old; sign the request again.",
    "future": "The signature's timestamp lies in the future; check the sender's clock.",
    "mismatch": "The signature does not match the request under any active secret.",
    "body_only": (
        "Sign the method, path and body (scheme v2, see the signing guide); body-only v1 "
        "signatures are no longer accepted."
    ),
    "unverifiable": "This service has no signing secrets configured to check the signature.",
    "replayed": "This signed request was already accepted once; sign each request anew.",
}


def signature_problem(reason: str) -> Problem:
    """The 401 for a rejected `Aviso-Signature`; `reason` is a stable code clients read."""
    return Problem(
        401,
        "Invalid request signature",
        _SIGNATURE_DETAIL.get(reason, "The request signature was not accepted."),
        type=problem_type("invalid-signature"),
        extensions={"reason": reason},
        headers={"WWW-Authenticate": f'{SIGNATURE_HEADER} realm="aviso"'},
    )


def _respond(request: Request, problem: Problem) -> Response:
    return problem_response(
        problem, instance=request.url.path, correlation_id=current_correlation_id.get()
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return _respond(request, not_found("No notice with this id is visible to you."))


async def _conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IntakeConflict)
    # The stable code is the problem type, so clients can branch on it.
    problem = Problem(
        409, "Conflict", exc.detail, type=problem_type(exc.code), extensions=exc.extensions
    )
    return _respond(request, problem)


async def _signature_rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignatureRejected)
    return _respond(request, signature_problem(exc.reason))


async def _restricted_in_releasable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RestrictedTermInReleasable)
    # Names the fields, never the term: the answer must not confirm what matched.
    msg = "repeats a term listed as restricted for this notice; describe it in general terms"
    problem = Problem(
        422,
        "Restricted detail in a releasable field",
        f"{', '.join(exc.fields)} {msg}.",
        type=problem_type("restricted-term-in-releasable"),
        extensions={
            "errors": [
                {"loc": ["body", field], "msg": msg, "type": "restricted_term"}
                for field in exc.fields
            ]
        },
    )
    return _respond(request, problem)


async def _bad_cursor(request: Request, exc: Exception) -> Response:
    return _respond(request, bad_request("The cursor is not one this service issued."))


def install_error_handlers(app: FastAPI) -> None:
    """Render intake's domain errors as RFC 9457 problems."""
    app.add_exception_handler(IntakeNotFound, _not_found)
    app.add_exception_handler(IntakeConflict, _conflict)
    app.add_exception_handler(SignatureRejected, _signature_rejected)
    app.add_exception_handler(InvalidCursor, _bad_cursor)
    app.add_exception_handler(RestrictedTermInReleasable, _restricted_in_releasable)
