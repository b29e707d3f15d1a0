"""What the submission layer answers itself (services/intake/http/submission_layer.py).

A plain answer is sent without Starlette's ExceptionMiddleware around it on every request;
what the answer raises is still answered by the app's own handlers (a problem stays a
problem+json), and the answer's bytes are those `Response` would have built.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import Receive, Scope, Send

from services.common.problems import PROBLEM_JSON, conflict, install_problem_handlers
from services.intake.http import plain_submission as module
from services.intake.http.submission_layer import PlainSubmissionLayer
from tests.support.plain_submission import (
    plain_stand_in,
    submission_endpoint,
    submission_router,
)


def _app(endpoint: Any) -> FastAPI:
    router = submission_router("/notices", endpoint)
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.user_middleware.append(Middleware(PlainSubmissionLayer, path="/notices"))
    return app


@pytest.fixture
def every_request_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "plain_submission", plain_stand_in)


@pytest.fixture
def exception_layers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests any ExceptionMiddleware was called for."""
    calls: list[str] = []
    call = ExceptionMiddleware.__call__

    async def counted(
        self: ExceptionMiddleware, scope: Scope, receive: Receive, send: Send
    ) -> None:
        calls.append(scope["path"])
        await call(self, scope, receive, send)

    monkeypatch.setattr(ExceptionMiddleware, "__call__", counted)
    return calls


async def _post(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://aviso.test") as client:
        return await client.post("/notices", json={})


@pytest.mark.usefixtures("every_request_plain")
async def test_a_plain_answer_is_sent_as_response_builds_it_without_exception_layers(
    exception_layers: list[str],
) -> None:
    def answer_with_headers(principal: Any, response: Response) -> dict[str, str]:
        response.headers["Location"] = "/notices/n-1"
        response.headers["X-Extra"] = "1"
        return {"id": "n-1", "principal": principal}

    answer = await _post(_app(submission_endpoint(answer_with_headers)))

    assert answer.status_code == 201
    body = b'{"id":"n-1","principal":"principal"}'
    expected = Response(content=body, status_code=201, media_type="application/json")
    expected.raw_headers.extend([(b"location", b"/notices/n-1"), (b"x-extra", b"1")])
    assert answer.headers.raw == expected.raw_headers
    assert answer.content == expected.body
    assert exception_layers == []  # main wrapped every plain answer in one


@pytest.mark.usefixtures("every_request_plain")
async def test_what_a_plain_answer_raises_is_answered_by_the_apps_handlers(
    exception_layers: list[str],
) -> None:
    def refuse(_principal: Any, _response: Response) -> dict[str, str]:
        raise conflict("The reference was used for other content.")

    answer = await _post(_app(submission_endpoint(refuse)))

    assert answer.status_code == 409
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["detail"] == "The reference was used for other content."
    assert exception_layers == ["/notices"]  # the handlers, on the error's way only


@pytest.mark.usefixtures("every_request_plain")
async def test_an_error_no_handler_takes_leaves_the_layer_as_it_came() -> None:
    def fail(_principal: Any, _response: Response) -> dict[str, str]:
        raise RuntimeError("a bug")

    answer = await _post(_app(submission_endpoint(fail)))

    assert answer.status_code == 500  # the catch-all's problem, outside the layer
    assert answer.headers["content-type"] == PROBLEM_JSON
