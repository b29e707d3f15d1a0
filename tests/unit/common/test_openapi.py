"""The OpenAPI documents tell the truth about errors (issue 12, item 10).

An app built as every service builds it (create_http_app), its lifespan not entered: the
statuses each operation can answer are derived from its route, as problem+json, and a 405
names every method the path takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from services.common.auth import Principal, Role, require_roles
from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.settings import CommonSettings

Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.OPS))]


class Body(BaseModel):
    name: str


def _app(tmp_path: Path, problems: dict[str, set[int]] | None = None) -> FastAPI:
    runtime = ServiceRuntime(
        name="svc", component="router", settings=CommonSettings(var_dir=tmp_path)
    )
    router = APIRouter()

    @router.get("/v1/things")
    async def things(_: Admin, limit: int = 5) -> list[str]:
        return []

    @router.post("/v1/things")
    async def create(_: Admin, body: Body) -> str:
        return body.name

    @router.get("/v1/things/{thing_id}")
    async def thing(_: Admin, thing_id: int) -> str:
        return str(thing_id)

    @router.get("/public")
    async def public() -> str:
        return "ok"

    return create_http_app(runtime, title="t", description="t", routers=[router], problems=problems)


def _responses(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = spec["paths"][path][method]["responses"]
    return responses


def test_statuses_are_derived_from_the_route(tmp_path: Path) -> None:
    spec = _app(tmp_path).openapi()
    assert set(_responses(spec, "get", "/v1/things")) == {"200", "401", "403", "422", "503"}
    assert set(_responses(spec, "post", "/v1/things")) == {
        "200", "400", "401", "403", "413", "415", "422", "503",
    }  # fmt: skip
    assert set(_responses(spec, "get", "/v1/things/{thing_id}")) == {
        "200", "401", "403", "404", "422", "503",
    }  # fmt: skip
    assert set(_responses(spec, "get", "/public")) == {"200", "503"}
    assert set(_responses(spec, "get", "/internal/alive")) == {"200"}


def test_every_problem_is_problem_json_with_the_problem_schema(tmp_path: Path) -> None:
    spec = _app(tmp_path).openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    content = response["content"]
                    assert list(content) == ["application/problem+json"], (method, path, status)
                    schema_ref = content["application/problem+json"]["schema"]["$ref"]
                    assert schema_ref == "#/components/schemas/Problem"
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"type", "title", "status"} <= set(schemas["Problem"]["required"])
    things = spec["paths"]["/v1/things"]["get"]
    assert things["x-roles"] == ["ops", "admin"]
    assert "WWW-Authenticate" in things["responses"]["401"]["headers"]


def test_declared_problems_are_added_and_stale_ones_fail(tmp_path: Path) -> None:
    spec = _app(tmp_path, {"POST /v1/things": {409}}).openapi()
    assert "409" in _responses(spec, "post", "/v1/things")
    with pytest.raises(ValueError, match="do not exist"):
        _app(tmp_path, {"DELETE /v1/things": {409}}).openapi()


async def test_a_405_allows_every_method_of_the_path(tmp_path: Path) -> None:
    transport = httpx.ASGITransport(app=_app(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.delete("/v1/things")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "GET, POST"
