"""The plain-submission route skips FastAPI's solving only where it does every dependency
itself (services/intake/http/plain_submission.py): a dependency added to the route, or by
the router that includes it, sends every request through FastAPI's handler again.

Which handler ran is seen by whether it tried `plain_submission` on the request.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.middleware import Middleware
from starlette.types import Receive, Scope, Send

from services.intake.http import plain_submission as module
from services.intake.http.plain_submission import (
    REPRODUCED_DEPENDENCIES,
    PlainSubmissionRoute,
    dependency_names,
)
from services.intake.http.submission_layer import PlainSubmissionLayer


def _named(name: str) -> Any:
    """A dependency that does nothing, under the qualified name of a real one."""

    async def dependency() -> None:
        return None

    dependency.__qualname__ = name
    return Depends(dependency)


async def _endpoint() -> dict[str, str]:
    return {"answered": "yes"}


def _app(*, on_route: list[str], on_include: list[str]) -> FastAPI:
    router = APIRouter()
    router.add_api_route(
        "/notices",
        _endpoint,
        methods=["POST"],
        dependencies=[_named(n) for n in [*sorted(REPRODUCED_DEPENDENCIES), *on_route]],
        route_class_override=PlainSubmissionRoute,
    )
    app = FastAPI()
    app.include_router(router, dependencies=[_named(n) for n in on_include])
    return app


@pytest.mark.parametrize(
    ("on_route", "on_include", "tried"),
    [([], [], True), (["rate_limit"], [], False), ([], ["tenant_check"], False)],
    ids=["only-what-it-does", "one-more-on-the-route", "one-more-from-the-including-router"],
)
async def test_a_dependency_it_does_not_do_keeps_fastapis_handler(
    monkeypatch: pytest.MonkeyPatch, on_route: list[str], on_include: list[str], tried: bool
) -> None:
    seen: list[str] = []

    async def recorded(request: Request) -> None:
        seen.append(request.url.path)
        return None  # not plain: FastAPI's handler answers

    monkeypatch.setattr(module, "plain_submission", recorded)
    transport = httpx.ASGITransport(app=_app(on_route=on_route, on_include=on_include))
    async with httpx.AsyncClient(transport=transport, base_url="http://aviso.test") as client:
        response = await client.post("/notices", json={})

    assert response.json() == {"answered": "yes"}
    assert seen == (["/notices"] if tried else [])


def test_dependencies_are_named_however_deep_and_instances_by_their_class() -> None:
    async def inner(_: Any = Depends(HTTPBearer())) -> None:
        return None

    async def outer(_: None = Depends(inner)) -> None:
        return None

    route = PlainSubmissionRoute("/x", _endpoint, methods=["POST"], dependencies=[Depends(outer)])

    here = "test_dependencies_are_named_however_deep_and_instances_by_their_class.<locals>"
    assert dependency_names(route.dependant) == {f"{here}.outer", f"{here}.inner", "HTTPBearer"}


@pytest.mark.parametrize(
    ("on_include", "tried", "routed"),
    [([], 1, 1), (["tenant_check"], 0, 1)],
    ids=["only-what-it-does", "one-more-from-the-including-router"],
)
async def test_the_submission_layer_hands_what_is_not_plain_to_fastapi_once(
    monkeypatch: pytest.MonkeyPatch, on_include: list[str], tried: int, routed: int
) -> None:
    """The layer (submission_layer.py) tries a request once; one it does not answer is
    routed by FastAPI, whose handler does not try it again; a route with a dependency
    the plain answer does not do is never tried."""
    seen: list[str] = []
    handled: list[str] = []

    async def recorded(request: Request) -> None:
        seen.append(request.url.path)
        assert await request.body() == b"{}"  # read here, and replayed to FastAPI
        return None

    handle = APIRoute.handle

    async def counted(self: APIRoute, scope: Scope, receive: Receive, send: Send) -> None:
        handled.append(scope["path"])
        await handle(self, scope, receive, send)

    monkeypatch.setattr(module, "plain_submission", recorded)
    monkeypatch.setattr(APIRoute, "handle", counted)
    app = _app(on_route=[], on_include=on_include)
    app.user_middleware.append(Middleware(PlainSubmissionLayer, path="/notices"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://aviso.test") as client:
        response = await client.post("/notices", json={})

    assert response.json() == {"answered": "yes"}
    assert (len(seen), len(handled)) == (tried, routed)
