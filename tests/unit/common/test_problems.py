"""problem+json handlers, the body guard and correlation ids, through a real FastAPI app."""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import structlog
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict
from starlette.types import Message

from services.common.logging import get_logger
from services.common.problems import (
    PROBLEM_JSON,
    BodyGuardMiddleware,
    CorrelationIdMiddleware,
    Problem,
    conflict,
    get_correlation_id,
    install_problem_handlers,
    is_database_unavailable,
    new_correlation_id,
    not_found,
    service_unavailable,
    unauthorized,
)

MAX_BODY = 256


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: str
    window_hours: int


class ConnectionDoesNotExistError(Exception):
    """Stands in for asyncpg's class of the same name (matched by module and name)."""


ConnectionDoesNotExistError.__module__ = "asyncpg.exceptions"


def build_app(*, guard: bool = True, problems_last: bool = False) -> tuple[FastAPI, list[Any]]:
    """A small app whose routes record what they store, wired like a service."""
    app = FastAPI()
    stored: list[Any] = []
    if not problems_last:
        install_problem_handlers(app)
    if guard:
        app.add_middleware(BodyGuardMiddleware, max_body_bytes=MAX_BODY)
    app.add_middleware(CorrelationIdMiddleware)
    if problems_last:
        install_problem_handlers(app)
    log = get_logger("tests.routes")

    @app.post("/v1/notices", status_code=201)
    async def create(notice: NoticeIn, request: Request) -> dict[str, Any]:
        stored.append(notice)
        log.info("notice.created", reference=notice.reference)
        return {
            "reference": notice.reference,
            "correlation_id": request.state.correlation_id,
            "from_contextvar": get_correlation_id(),
        }

    @app.post("/v1/notices/{notice_id}/cancel")
    async def cancel(notice_id: str) -> dict[str, str]:
        stored.append(notice_id)
        return {"cancelled": notice_id}

    @app.post("/internal/echo")
    async def internal(request: Request) -> dict[str, int]:
        return {"length": len(await request.body())}

    @app.get("/v1/notices/{notice_id}")
    async def read(notice_id: str) -> dict[str, str]:
        if notice_id == "missing":
            raise not_found("No such notice.", notice_id=notice_id)
        if notice_id == "taken":
            raise conflict("Reference already used with different content.")
        if notice_id == "outage":
            raise service_unavailable("Try later.", retry_after_s=7)
        if notice_id == "anon":
            raise unauthorized("Send a token.")
        return {"id": notice_id}

    @app.get("/v1/failures/{kind}")
    async def fail(kind: str) -> None:
        secret = f"CANARY-7f3a-{kind}"
        if kind == "bug":
            raise RuntimeError(f"boom {secret}")
        if kind == "db-refused":
            raise sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(secret))
        if kind == "db-asyncpg":
            try:
                raise ConnectionDoesNotExistError(secret)
            except ConnectionDoesNotExistError as cause:
                raise sa.exc.DBAPIError("SELECT 1", {}, Exception(secret)) from cause
        if kind == "db-pool":
            raise TimeoutError(secret)
        if kind == "db-integrity":
            raise sa.exc.IntegrityError("INSERT", {"v": secret}, Exception(secret))
        if kind == "local-file":
            raise FileNotFoundError(secret)

    return app, stored


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://aviso.test")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    return body


# --- handlers --------------------------------------------------------------------


async def test_problem_exception_renders_rfc9457_with_instance_and_correlation() -> None:
    app, _ = build_app()
    async with client(app) as http:
        response = await http.get(
            "/v1/notices/missing", headers={"X-Correlation-ID": "field-office:42.a_b-c"}
        )
    body = assert_problem(response, 404)
    assert body == {
        "type": "https://aviso.local/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No such notice.",
        "instance": "/v1/notices/missing",
        "notice_id": "missing",
        "correlation_id": "field-office:42.a_b-c",
    }
    assert response.headers["X-Correlation-ID"] == "field-office:42.a_b-c"


async def test_factories_set_their_headers() -> None:
    app, _ = build_app()
    async with client(app) as http:
        anon = await http.get("/v1/notices/anon")
        outage = await http.get("/v1/notices/outage")
        taken = await http.get("/v1/notices/taken")
    assert_problem(anon, 401)
    assert anon.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(outage, 503)
    assert outage.headers["Retry-After"] == "7"
    assert assert_problem(taken, 409)["type"] == "https://aviso.local/problems/conflict"


def test_extensions_cannot_override_standard_members() -> None:
    problem = Problem(400, "Bad", "why", extensions={"status": 200, "hint": "x"})
    assert problem.to_dict(instance="/p") == {
        "hint": "x",
        "type": "about:blank",
        "title": "Bad",
        "status": 400,
        "detail": "why",
        "instance": "/p",
    }


async def test_starlette_http_exceptions_become_problems() -> None:
    app, _ = build_app()
    async with client(app) as http:
        unknown = await http.get("/v1/nowhere")
        wrong_method = await http.delete("/v1/notices/n-1")
    body = assert_problem(unknown, 404)
    assert body["type"] == "about:blank"
    assert body["instance"] == "/v1/nowhere"
    assert "correlation_id" in body
    assert_problem(wrong_method, 405)
    assert "GET" in wrong_method.headers["Allow"]


async def test_validation_errors_list_where_and_why_never_the_input() -> None:
    app, stored = build_app()
    secret = f"CANARY-7f3a-{uuid.uuid4().hex}"
    async with client(app) as http:
        response = await http.post(
            "/v1/notices",
            json={"reference": "r-1", "window_hours": secret, "agent_name": secret},
        )
    body = assert_problem(response, 422)
    assert secret not in response.text
    assert body["type"] == "https://aviso.local/problems/validation-failed"
    by_type = {error["type"]: error for error in body["errors"]}
    assert by_type["int_parsing"]["loc"] == ["body", "window_hours"]
    assert by_type["extra_forbidden"]["loc"] == ["body", "agent_name"]
    assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])
    assert stored == []


async def test_unparseable_json_without_the_guard_is_400_not_422() -> None:
    app, stored = build_app(guard=False)
    async with client(app) as http:
        response = await http.post(
            "/v1/notices", content=b'{"reference": ', headers={"content-type": "application/json"}
        )
    assert_problem(response, 400)
    assert stored == []


async def test_unhandled_error_is_a_generic_500_logged_once(log_output: io.StringIO) -> None:
    app, _ = build_app()
    async with client(app) as http:
        response = await http.get("/v1/failures/bug", headers={"X-Correlation-ID": "corr-500"})
    body = assert_problem(response, 500)
    assert "CANARY" not in response.text
    assert "boom" not in response.text
    assert body["correlation_id"] == "corr-500"
    assert response.headers["X-Correlation-ID"] == "corr-500"
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["event"] == "http.unhandled_error"
    assert errors[0]["correlation_id"] == "corr-500"
    assert "RuntimeError" in errors[0]["exception"]


async def test_500_keeps_correlation_header_when_problems_installed_last(
    log_output: io.StringIO,
) -> None:
    app, _ = build_app(problems_last=True)
    async with client(app) as http:
        response = await http.get("/v1/failures/bug", headers={"X-Correlation-ID": "corr-outer"})
    assert assert_problem(response, 500)["correlation_id"] == "corr-outer"
    assert response.headers["X-Correlation-ID"] == "corr-outer"
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    (error,) = [r for r in records if r["level"] == "error"]
    assert error["correlation_id"] == "corr-outer"


@pytest.mark.parametrize("kind", ["db-refused", "db-asyncpg", "db-pool"])
async def test_database_unavailable_is_503_with_retry_after(
    kind: str, log_output: io.StringIO
) -> None:
    app, _ = build_app()
    async with client(app) as http:
        response = await http.get(f"/v1/failures/{kind}")
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "5"
    assert "CANARY" not in response.text
    assert body["type"] == "https://aviso.local/problems/service-unavailable"
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    (warning,) = [r for r in records if r["logger"] == "services.common.problems"]
    assert warning["event"] == "http.database_unavailable"
    assert warning["level"] == "warning"
    assert "CANARY" not in log_output.getvalue()  # an outage logs no exception text


@pytest.mark.parametrize("kind", ["db-integrity", "local-file"])
async def test_other_errors_are_not_mistaken_for_an_outage(
    kind: str, log_output: io.StringIO
) -> None:
    app, _ = build_app()
    async with client(app) as http:
        response = await http.get(f"/v1/failures/{kind}")
    assert_problem(response, 500)
    assert "CANARY" not in response.text


def test_is_database_unavailable_follows_wrapped_causes() -> None:
    invalidated = sa.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert is_database_unavailable(invalidated)
    assert is_database_unavailable(ConnectionRefusedError())
    assert not is_database_unavailable(ValueError("x"))
    assert not is_database_unavailable(sa.exc.DBAPIError("SELECT 1", {}, Exception("syntax")))


# --- correlation id ---------------------------------------------------------------


async def test_correlation_id_reaches_state_contextvar_logs_and_response(
    log_output: io.StringIO,
) -> None:
    app, _ = build_app()
    async with client(app) as http:
        response = await http.post(
            "/v1/notices",
            json={"reference": "r-2", "window_hours": 3},
            headers={"X-Correlation-ID": "corr-abc"},
        )
    assert response.status_code == 201
    assert response.json()["correlation_id"] == "corr-abc"
    assert response.json()["from_contextvar"] == "corr-abc"
    assert response.headers["X-Correlation-ID"] == "corr-abc"
    assert response.headers["X-Request-ID"]
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    (line,) = [r for r in records if r["event"] == "notice.created"]
    assert line["correlation_id"] == "corr-abc"
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert get_correlation_id() is None  # nothing leaks out of the request


async def test_the_ids_replace_any_the_app_set_and_leave_other_headers_in_order() -> None:
    """An answer's own `X-Correlation-ID`/`X-Request-ID` (any case, repeated) give way to
    the request's: one of each, where the first stood; other headers stay as they were."""
    sent: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"x-correlation-id", b"mine"),
            (b"content-type", b"application/json"),
            (b"x-correlation-id", b"again"),
            (b"x-other", b"1"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/x",
        "headers": [(b"x-correlation-id", b"corr-1"), (b"X-Correlation-ID", b"corr-2")],
    }
    await CorrelationIdMiddleware(app)(scope, _no_body, send)
    headers = sent[0]["headers"]
    request_id = scope["state"]["request_id"]
    assert headers == [
        (b"x-correlation-id", b"corr-1"),  # the first of the request's, as Headers.get
        (b"content-type", b"application/json"),
        (b"x-other", b"1"),
        (b"x-request-id", request_id.encode()),
    ]
    assert sent[1]["body"] == b"{}"


async def test_headers_given_as_a_one_pass_iterable_are_still_there_for_the_app() -> None:
    """ASGI allows any iterable of headers: the layers read them without using them up."""
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(list(scope["headers"]))
        await receive()

    raw = [(b"content-type", b"application/json"), (b"x-correlation-id", b"corr-9")]
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/x",
        "headers": iter(raw),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    layers = CorrelationIdMiddleware(BodyGuardMiddleware(app, max_body_bytes=64))
    await layers(scope, receive, _ignore)
    assert seen == [raw]
    assert scope["state"]["correlation_id"] == "corr-9"


async def test_the_ids_bound_for_a_request_give_way_to_those_bound_before_it(
    log_output: io.StringIO,
) -> None:
    """Inside, lines carry the request's ids; after it (an answer or an error) the log
    context is what it was before: an outer id back, an id never bound absent."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(structlog.contextvars.get_contextvars())
        if scope["path"] == "/v1/fail":
            raise RuntimeError("boom")

    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/v1/x", "headers": []}
    with structlog.contextvars.bound_contextvars(correlation_id="outer"):
        await CorrelationIdMiddleware(app)(scope, _no_body, _ignore)
        assert structlog.contextvars.get_contextvars() == {"correlation_id": "outer"}
        failing = {**scope, "path": "/v1/fail", "state": {}}
        with pytest.raises(RuntimeError):
            await CorrelationIdMiddleware(app)(failing, _no_body, _ignore)
        assert structlog.contextvars.get_contextvars() == {"correlation_id": "outer"}
    assert "request_id" not in structlog.contextvars.get_contextvars()
    assert seen[0] == {
        "correlation_id": scope["state"]["correlation_id"],
        "request_id": scope["state"]["request_id"],
    }
    assert seen[0]["correlation_id"] != "outer"
    assert get_correlation_id() is None


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _ignore(message: Message) -> None:
    return None


@pytest.mark.parametrize("supplied", ["", "has space", "x" * 129, "semi;colon", "ünï"])
async def test_invalid_correlation_ids_are_replaced(supplied: str) -> None:
    app, _ = build_app()
    async with client(app) as http:
        response = await http.get(
            "/v1/notices/n-1", headers={b"X-Correlation-ID": supplied.encode("utf-8")}
        )
    assert response.status_code == 200
    echoed = response.headers["X-Correlation-ID"]
    assert echoed != supplied
    assert uuid.UUID(echoed).version == 4


async def test_missing_correlation_id_is_generated() -> None:
    app, _ = build_app()
    async with client(app) as http:
        first = await http.get("/v1/notices/n-1")
        second = await http.get("/v1/notices/n-1")
    assert uuid.UUID(first.headers["X-Correlation-ID"])
    assert first.headers["X-Correlation-ID"] != second.headers["X-Correlation-ID"]


async def test_a_requests_ids_are_random_uuids_drawn_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both ids are a random UUID's text, distinct per request, from one draw of the
    system's randomness a request (uuid.uuid4 drew once per id: two)."""
    draws: list[int] = []
    urandom = os.urandom

    def counted(size: int) -> bytes:
        draws.append(size)
        return urandom(size)

    app, _ = build_app()
    async with client(app) as http:
        monkeypatch.setattr(os, "urandom", counted)
        responses = [await http.get("/v1/notices/n-1") for _ in range(20)]
        monkeypatch.undo()
    ids = [r.headers[h] for r in responses for h in ("X-Correlation-ID", "X-Request-ID")]
    for value in ids:
        parsed = uuid.UUID(value)
        assert (str(parsed), parsed.version, parsed.variant) == (value, 4, uuid.RFC_4122)
    assert len(set(ids)) == 40
    assert len(draws) == 20
    assert new_correlation_id() != new_correlation_id()
    assert uuid.UUID(new_correlation_id()).version == 4


# --- body guard --------------------------------------------------------------------


async def test_valid_json_passes_through_with_body_replayed() -> None:
    app, stored = build_app()
    async with client(app) as http:
        response = await http.post(
            "/v1/notices",
            content=json.dumps({"reference": "r-3", "window_hours": 1}).encode(),
            headers={"content-type": "application/json; charset=UTF-8"},
        )
    assert response.status_code == 201
    assert [n.reference for n in stored] == ["r-3"]


async def test_declared_length_over_limit_is_413() -> None:
    app, stored = build_app()
    body = json.dumps({"reference": "r" * MAX_BODY, "window_hours": 1}).encode()
    async with client(app) as http:
        response = await http.post(
            "/v1/notices", content=body, headers={"content-type": "application/json"}
        )
    problem = assert_problem(response, 413)
    assert problem["max_body_bytes"] == MAX_BODY
    assert problem["instance"] == "/v1/notices"
    assert stored == []


async def test_chunked_body_over_limit_is_413() -> None:
    app, stored = build_app()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"reference": "'
        for _ in range(10):
            yield b"r" * 64
        yield b'", "window_hours": 1}'

    async with client(app) as http:
        response = await http.post(
            "/v1/notices", content=chunks(), headers={"content-type": "application/json"}
        )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert stored == []


async def test_streamed_body_is_never_buffered_past_the_limit() -> None:
    consumed = 0
    downstream_called = False
    sent: list[Message] = []

    async def endless_receive() -> Message:
        nonlocal consumed
        consumed += 1
        return {"type": "http.request", "body": b"x" * 40, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    async def downstream(scope: Any, receive: Any, send: Any) -> None:
        nonlocal downstream_called
        downstream_called = True

    guard = BodyGuardMiddleware(downstream, max_body_bytes=100)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/notices",
        "headers": [(b"content-type", b"application/json")],
    }
    await guard(scope, endless_receive, send)
    assert consumed == 3  # 120 bytes > 100: stop at the chunk that crossed the limit
    assert not downstream_called
    assert sent[0]["status"] == 413


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_wrong_content_type_is_415(content_type: str) -> None:
    app, stored = build_app()
    async with client(app) as http:
        response = await http.post(
            "/v1/notices",
            content=b'{"reference": "r", "window_hours": 1}',
            headers={"content-type": content_type},
        )
    assert assert_problem(response, 415)["accepted"] == ["application/json"]
    assert stored == []


async def test_missing_content_type_allowed_only_for_an_empty_body() -> None:
    app, stored = build_app()
    async with client(app) as http:
        empty = await http.post("/v1/notices/n-1/cancel")
        with_body = await http.post("/v1/notices/n-1/cancel", content=b'{"reason": "x"}')
    assert empty.status_code == 200
    assert_problem(with_body, 415)
    assert stored == ["n-1"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"reference": "r\xff", "window_hours": 1}', "UTF-8"),
        (b'{"reference": "r", "window_hours": 1', "JSON"),
        (b'{"reference": "r", "window_hours": NaN}', "JSON"),
        (b'{"reference": "r", "reference": "s", "window_hours": 1}', "JSON"),
        (b"\xef\xbb\xbf{}", "JSON"),
    ],
)
async def test_invalid_utf8_or_json_is_400(body: bytes, why: str) -> None:
    app, stored = build_app()
    async with client(app) as http:
        response = await http.post(
            "/v1/notices", content=body, headers={"content-type": "application/json"}
        )
    problem = assert_problem(response, 400)
    assert why in problem["detail"]
    assert stored == []


async def _guarded(body: bytes) -> tuple[list[Message], list[bytes]]:
    """The guard alone over `body`: what it answered, and the bodies it let through."""
    sent: list[Message] = []
    passed: list[bytes] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def downstream(scope: Any, receive: Any, send: Any) -> None:
        passed.append((await receive())["body"])

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/x",
        "headers": [(b"content-type", b"application/json")],
    }
    await BodyGuardMiddleware(downstream, max_body_bytes=4096)(scope, receive, send)
    return sent, passed


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 1}',
        b'{"a": 1, "\\u0061": 2}',  # one key, two spellings
        b'{"\\u0061": 1, "\\u0061": 2}',
        b'{"caf\\u00e9": 1, "caf\xc3\xa9": 2}',  # escaped and raw UTF-8
        b'{"a\\/b": 1, "a/b": 2}',
        b'{"outer": {"b": 1, "c": 2, "b": 3}}',  # nested
        b'[{"ok": 1}, {"x": 1, "\\u0078": 2}]',  # in an array
        b'{"a": {"a": {"a": 1, "a": 2}}}',
    ],
    ids=["plain", "escaped", "both-escaped", "unicode", "solidus", "nested", "array", "deep"],
)
async def test_duplicate_keys_are_refused_in_every_spelling(body: bytes) -> None:
    sent, passed = await _guarded(body)
    assert passed == []
    assert sent[0]["status"] == 400
    problem = json.loads(sent[1]["body"])
    assert problem["detail"] == "The request body is not valid JSON."
    assert problem["instance"] == "/v1/x"


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "b": {"a": 2, "b": [{"a": 3}, {"a": 4}]}}',  # one key in several objects
        b'{"a": 1, "A": 2, "a ": 3}',  # different keys, alike to the eye
        b"{}",
        b"[]",
        b'"a"',
    ],
)
async def test_a_key_repeated_only_across_objects_passes(body: bytes) -> None:
    sent, passed = await _guarded(body)
    assert passed == [body]
    assert sent == []


async def test_the_guard_builds_no_json_decoder_per_body(monkeypatch: pytest.MonkeyPatch) -> None:
    # `json.loads` with hooks built a decoder (and its scanner) for every body it checked.
    built: list[object] = []

    class CountedDecoder(json.JSONDecoder):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(json, "JSONDecoder", CountedDecoder)
    for body in (b'{"a": 1}', b'{"a": 1, "a": 2}', b"[NaN]"):
        await _guarded(body)
    assert built == []


async def test_non_numeric_content_length_is_400() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def downstream(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("must not run")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/x",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"-1")],
    }
    await BodyGuardMiddleware(downstream, max_body_bytes=10)(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_unguarded_paths_and_methods_pass_through() -> None:
    app, _ = build_app()
    async with client(app) as http:
        internal = await http.post(
            "/internal/echo", content=b"not json at all", headers={"content-type": "text/plain"}
        )
        read = await http.get("/v1/notices/n-1", headers={"content-type": "text/plain"})
    assert internal.json() == {"length": 15}
    assert read.status_code == 200


def test_logging_is_left_usable() -> None:
    # Sanity check that the fixtures above restore a working root handler.
    assert logging.getLogger().handlers
