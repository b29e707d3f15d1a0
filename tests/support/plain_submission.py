"""A stand-in for intake's plain submission route, for the tests and the edge bench.

The real route class (`PlainSubmissionRoute`) and the dependencies its fast path
reproduces, by name, around an endpoint with the real submission's signature that
answers as the caller says; and a `plain_submission` that reads the body and hands back
fixed values instead of checking a token and parsing (patch it into the module).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response

from services.intake.http.plain_submission import REPRODUCED_DEPENDENCIES, PlainSubmissionRoute

__all__ = ["plain_stand_in", "submission_endpoint", "submission_router"]

Answer = Callable[[Any, Response], dict[str, str]]


def _named(name: str) -> Any:
    """A dependency that does nothing, under the qualified name of a real one."""

    async def dependency() -> None:
        return None

    dependency.__qualname__ = name
    return Depends(dependency)


def submission_endpoint(answer: Answer) -> Any:
    """An endpoint with the real submission's signature, answering as `answer` says."""

    async def endpoint(
        principal: Any = None,
        *,
        signed: Any = None,
        body: Any = None,
        response: Response,
        idempotency_key: Any = None,
    ) -> dict[str, str]:
        return answer(principal, response)

    return endpoint


def submission_router(path: str, endpoint: Any) -> APIRouter:
    """`endpoint` routed at `path` as intake routes the submission: its route class and
    the dependencies the plain path reproduces."""
    router = APIRouter()
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        status_code=201,
        dependencies=[_named(n) for n in sorted(REPRODUCED_DEPENDENCIES)],
        route_class_override=PlainSubmissionRoute,
    )
    return router


async def plain_stand_in(request: Any) -> tuple[str, dict[str, str]]:
    """`plain_submission`'s answer without its work: the body read, fixed values."""
    await request.body()
    return "principal", {"reference": "r-1"}
