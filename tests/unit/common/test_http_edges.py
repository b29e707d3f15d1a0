"""The shared HTTP edge: metrics by route template, redirects never built from Host.

Issue 12, items 4 and 9. The app is built as every service builds it (create_http_app) but
its lifespan is not entered: these requests need no database or broker.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import httpx
from fastapi import APIRouter
from prometheus_client import REGISTRY

import services.common.logging.setup as log_setup
from services.common.http import UNMATCHED_ROUTE, create_http_app
from services.common.logging import configure_logging, get_logger, info_on_request_line
from services.common.runtime import ServiceRuntime
from services.common.settings import CommonSettings

_things_log = get_logger("tests.things")


def _app(tmp_path: Path, service: str, **settings: object) -> httpx.AsyncClient:
    runtime = ServiceRuntime(
        name=service,
        component="router",  # any known database component; nothing connects here
        settings=CommonSettings(var_dir=tmp_path, **settings),  # type: ignore[arg-type]
    )
    router = APIRouter()

    @router.post("/v1/things")
    async def create() -> dict[str, str]:
        info_on_request_line(_things_log, "thing.created", thing_id="t-1", status="Exercise")
        info_on_request_line(_things_log, "thing.indexed", thing_id="t-1")  # a second: at once
        return {"id": "t-1"}

    @router.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.post("/v1/things/{thing_id}/close")
    async def close(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app = create_http_app(runtime, title="t", description="t", routers=[router])
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _series(service: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for metric in REGISTRY.collect()
        if metric.name == "aviso_http_requests"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["service"] == service
    ]


async def test_metrics_label_routes_by_template_and_unmatched_paths_share_one_label(
    tmp_path: Path,
) -> None:
    service = f"edge-{uuid.uuid4().hex[:8]}"
    ids = [str(uuid.uuid4()) for _ in range(5)]
    async with _app(tmp_path, service) as client:
        for thing_id in ids:
            assert (await client.get(f"/v1/things/{thing_id}")).status_code == 200
            assert (await client.get(f"/random/{thing_id}")).status_code == 404
        assert (await client.get(f"/v1/things/{ids[0]}/close")).status_code == 405
        assert (await client.request("BREW", "/v1/things/x")).status_code == 405
    series = _series(service)
    routes = {labels["route"] for labels in series}
    assert routes == {"/v1/things/{thing_id}", "/v1/things/{thing_id}/close", UNMATCHED_ROUTE}
    assert not any(thing_id in str(series) for thing_id in ids)
    assert {labels["method"] for labels in series} == {"GET", "other"}


async def test_a_trailing_slash_redirect_is_relative_whatever_the_host_header(
    tmp_path: Path,
) -> None:
    async with _app(tmp_path, f"edge-{uuid.uuid4().hex[:8]}") as client:
        response = await client.get("/v1/things/7/?a=1", headers={"Host": "evil.example"})
        assert response.status_code == 307
        assert response.headers["location"] == "/v1/things/7?a=1"
        response = await client.get("//evil.example/", headers={"Host": "evil.example"})
        assert "evil.example" not in response.headers.get("location", "")


async def test_metrics_leave_the_service_port_when_given_their_own_address(
    tmp_path: Path,
) -> None:
    async with _app(tmp_path, "edge-a") as client:
        assert (await client.get("/metrics")).status_code == 200
    async with _app(tmp_path, "edge-b", metrics_address="127.0.0.1:0") as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_one_request_line_with_status_and_duration_and_no_query(tmp_path: Path) -> None:
    secret = f"CANARY-{uuid.uuid4().hex}"
    buffer = io.StringIO()
    configure_logging("edge", fmt="json", stream=buffer, force=True)
    try:
        async with _app(tmp_path, f"edge-{uuid.uuid4().hex[:8]}") as client:
            response = await client.get(f"/v1/things/7?token={secret}")
            assert response.status_code == 200
    finally:
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
    requests = [
        line
        for line in map(json.loads, buffer.getvalue().splitlines())
        if line["event"] == "http.request"
    ]
    assert len(requests) == 1
    (line,) = requests
    assert line["logger"] == "aviso.access"
    assert (line["http_method"], line["http_path"], line["http_route"], line["http_status"]) == (
        "GET",
        "/v1/things/7",
        "/v1/things/{thing_id}",
        200,
    )
    assert line["duration_ms"] >= 0
    assert line["correlation_id"]
    assert line["request_id"]
    assert "worker" not in line  # one process: no worker field
    assert secret not in buffer.getvalue()


async def test_what_the_app_says_about_a_request_is_its_one_line(tmp_path: Path) -> None:
    buffer = io.StringIO()
    configure_logging("edge", fmt="json", stream=buffer, force=True)
    try:
        async with _app(tmp_path, f"edge-{uuid.uuid4().hex[:8]}") as client:
            assert (await client.post("/v1/things")).status_code == 200
        info_on_request_line(_things_log, "thing.swept", thing_id="t-1")  # no request: at once
    finally:
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
    records = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["thing.indexed", "thing.created", "thing.swept"]
    indexed, created, swept = records
    assert "http_status" not in indexed
    assert created["logger"] == "tests.things"
    assert (created["thing_id"], created["status"]) == ("t-1", "Exercise")
    assert (created["http_method"], created["http_route"], created["http_status"]) == (
        "POST",
        "/v1/things",
        200,
    )
    assert created["duration_ms"] >= 0
    assert "http_status" not in swept
