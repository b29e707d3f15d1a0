"""The console's pages, one module per area (server-rendered; forms work without script).

`ROUTERS` is in registration order: fixed paths (`/alerts/events`, `/notices/new`) come
before the `/alerts/{id}` and `/notices/{id}` pages that would otherwise take them.
"""

from collections.abc import Callable

from fastapi import APIRouter

from services.console.deps import ConsoleDeps
from services.console.http.alerts import alerts_router
from services.console.http.bulletins import bulletins_router
from services.console.http.directory import directory_router
from services.console.http.inbox import inbox_router
from services.console.http.notices import notices_router
from services.console.http.oidc import oidc_router
from services.console.http.ops import ops_router
from services.console.http.rumors import rumors_router
from services.console.http.signin import signin_router

__all__ = [
    "ROUTERS",
    "alerts_router",
    "bulletins_router",
    "directory_router",
    "inbox_router",
    "notices_router",
    "oidc_router",
    "ops_router",
    "rumors_router",
    "signin_router",
]

ROUTERS: tuple[Callable[[ConsoleDeps], APIRouter], ...] = (
    signin_router,
    oidc_router,
    inbox_router,
    notices_router,
    alerts_router,
    bulletins_router,
    rumors_router,
    ops_router,
    directory_router,
)
