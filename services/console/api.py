"""The three services' APIs, called as the signed-in person (their token, their role).

The console decides no permission itself: whatever a service refuses comes back as an
`ApiProblem` with the service's status and RFC 9457 title and detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx

from services.common.logging import get_logger

__all__ = ["ApiProblem", "Service", "ServiceApi"]

log = get_logger(__name__)

Service = Literal["intake", "router", "rumor_control"]


class ApiProblem(Exception):
    """A service refused or failed a request (status, and the problem's title and detail)."""

    def __init__(self, status: int, title: str, detail: str, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body


@dataclass
class ServiceApi:
    """One HTTP client for the three services."""

    urls: dict[Service, str]
    client: httpx.AsyncClient

    async def call(
        self,
        method: str,
        service: Service,
        path: str,
        *,
        token: str,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        text: bool = False,
    ) -> Any:
        """The JSON (or text) answer of a 2xx; raises ApiProblem otherwise."""
        try:
            response = await self.client.request(
                method,
                self.urls[service] + path,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                json=json,
                params=params,
            )
        except httpx.HTTPError as exc:
            log.warning("console.service_unreachable", service=service, error=type(exc).__name__)
            raise ApiProblem(503, "Service unavailable", f"{service} did not answer.", {}) from None
        if response.status_code >= 400:
            body: dict[str, Any] = {}
            if "json" in response.headers.get("content-type", ""):
                parsed = response.json()
                body = parsed if isinstance(parsed, dict) else {}
            raise ApiProblem(
                response.status_code,
                str(body.get("title", response.reason_phrase)),
                str(body.get("detail", "")),
                body,
            )
        if text:
            return response.text
        return response.json()

    async def ready(self, service: Service) -> bool:
        """Whether the service answers its readiness probe."""
        try:
            response = await self.client.get(self.urls[service] + "/internal/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200
