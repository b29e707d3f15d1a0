"""The request's edge (services/common/edge.py): four layers' work done in one.

`RequestEdge` takes the ids, guards the body, turns an unhandled error into a problem,
counts and logs the request, in the order the separate layers did it. These tests hold
that order where it shows: an error's problem and its log line carry the request's ids,
a refused body is answered with them, the request's line comes after the context is
reset, and the context is what it was before the request, whatever the way out.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi import APIRouter
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import Message

from services.common.cloudevents import current_correlation_id
from services.common.edge import RequestEdge
from services.common.http import create_http_app
from services.common.problems import PROBLEM_JSON
from services.common.runtime import ServiceRuntime
from services.common.settings import CommonSettings


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def _scope(method: str = "POST", path: str = "/v1/x", **headers: str) -> dict[str, Any]:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": method, "path": path, "headers": raw}


def _body(data: bytes) -> Any:
    async def receive() -> Message:
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


class _Sent:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(b"".join(m.get("body", b"") for m in self.messages[1:])))


def _edge(app: Any) -> RequestEdge:
    return RequestEdge(app, service=f"edge-{uuid.uuid4().hex[:8]}", max_body_bytes=64)


async def test_an_error_inside_is_a_problem_with_the_ids_and_its_lines_carry_them(
    log_output: io.StringIO,
) -> None:
    """The catch-all runs inside the ids' binding: the 500's body, its headers, the error's
    own line and the request's line all name the same correlation id."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    sent = _Sent()
    scope = _scope(content_type="application/json", x_correlation_id="corr-7")
    await _edge(app)(scope, _body(b"{}"), sent)

    assert sent.status == 500
    assert sent.headers[b"content-type"] == PROBLEM_JSON.encode()
    assert sent.headers[b"x-correlation-id"] == b"corr-7"
    assert sent.headers[b"x-request-id"] == scope["state"]["request_id"].encode()
    assert sent.body["correlation_id"] == "corr-7"
    error, request = _lines(log_output)
    assert (error["event"], error["correlation_id"]) == ("http.unhandled_error", "corr-7")
    assert error["request_id"] == scope["state"]["request_id"]  # bound: the layer's context
    assert (request["event"], request["http_status"]) == ("http.request", 500)
    assert request["correlation_id"] == "corr-7"


async def test_a_refused_body_is_answered_with_the_ids_and_never_reaches_the_app(
    log_output: io.StringIO,
) -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    sent = _Sent()
    scope = _scope(content_type="application/json")
    await _edge(app)(scope, _body(b'{"a": 1, "a": 2}'), sent)

    assert reached == []
    assert sent.status == 400
    assert sent.headers[b"content-type"] == PROBLEM_JSON.encode()
    correlation_id = scope["state"]["correlation_id"]
    assert sent.headers[b"x-correlation-id"] == correlation_id.encode()
    assert sent.body["correlation_id"] == correlation_id
    (request,) = _lines(log_output)
    assert (request["http_status"], request["correlation_id"]) == (400, correlation_id)


async def test_the_body_read_by_the_guard_is_given_to_the_app_whole() -> None:
    received: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(await receive())
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent = _Sent()
    await _edge(app)(_scope(content_type="application/json"), _body(b'{"a": 1}'), sent)

    assert received == [{"type": "http.request", "body": b'{"a": 1}', "more_body": False}]
    assert sent.status == 201


@pytest.mark.parametrize("way_out", ["answer", "error", "refused", "error after the start"])
async def test_the_log_context_is_what_it_was_before_the_request(
    log_output: io.StringIO, way_out: str
) -> None:
    """Whatever the way out, an outer id is back and the request's ids are gone; inside,
    the app saw the request's ids; the request's line names them from the state."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(structlog.contextvars.get_contextvars())
        if way_out == "error":
            raise RuntimeError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if way_out == "error after the start":
            raise RuntimeError("too late for a problem")
        await send({"type": "http.response.body", "body": b"{}"})

    sent = _Sent()
    body = b"{" if way_out == "refused" else b"{}"
    scope = _scope(content_type="application/json")
    with structlog.contextvars.bound_contextvars(correlation_id="outer"):
        if way_out == "error after the start":
            with pytest.raises(RuntimeError, match="too late"):
                await _edge(app)(scope, _body(body), sent)
        else:
            await _edge(app)(scope, _body(body), sent)
        assert structlog.contextvars.get_contextvars() == {"correlation_id": "outer"}
    assert current_correlation_id.get() is None
    state = scope["state"]
    if way_out != "refused":
        assert seen == [
            {"correlation_id": state["correlation_id"], "request_id": state["request_id"]}
        ]
    assert [m["type"] for m in sent.messages][:1] == ["http.response.start"]
    # One answer only: an error after the start is not answered a second time.
    assert [m["type"] for m in sent.messages].count("http.response.start") == 1
    request = _lines(log_output)[-1]
    assert request["event"] == "http.request"
    assert (request["correlation_id"], request["request_id"]) == (
        state["correlation_id"],
        state["request_id"],
    )


async def test_the_ids_replace_the_apps_own_and_a_routeless_redirect_is_relative() -> None:
    """On the answer's start: the ids set (the app's own replaced, the first in its place),
    and a Location no route made rewritten to its path."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"x-request-id", b"the-apps"),
            (b"location", b"http://evil.example/v1/y?a=1"),
            (b"x-request-id", b"another"),
        ]
        await send({"type": "http.response.start", "status": 307, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent = _Sent()
    scope = _scope(method="GET", x_correlation_id="corr-3")
    await _edge(app)(scope, _body(b""), sent)

    assert sent.messages[0]["headers"] == [
        (b"x-request-id", scope["state"]["request_id"].encode()),
        (b"location", b"/v1/y?a=1"),
        (b"x-correlation-id", b"corr-3"),
    ]


def test_a_services_app_has_one_layer_of_its_own_and_none_of_fastapis_idle_ones(
    tmp_path: Path,
) -> None:
    """The stack under FastAPI: the edge, then FastAPI's exception handlers and exit stack.
    ServerErrorMiddleware and the telemetry layer are left out (telemetry is off, no
    debug, no 500 handler); the stack keeps them where one of those holds."""
    runtime = ServiceRuntime(
        name="edge-stack",
        component="router",  # any known database component; nothing connects here
        settings=CommonSettings(var_dir=tmp_path),
    )
    app = create_http_app(runtime, title="t", description="t", routers=[APIRouter()])
    layers: list[type] = []
    layer: Any = app.build_middleware_stack()
    while layer is not app.router:
        layers.append(type(layer))
        layer = layer.app
    assert layers == [RequestEdge, ExceptionMiddleware, AsyncExitStackMiddleware]

    app.debug = True
    assert isinstance(app.build_middleware_stack(), ServerErrorMiddleware)
