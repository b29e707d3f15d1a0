"""The console's pages, one module per area (server-rendered; forms work without script)."""

from services.console.http.alerts import alerts_router
from services.console.http.bulletins import bulletins_router
from services.console.http.ops import ops_router
from services.console.http.rumors import rumors_router
from services.console.http.signin import signin_router

__all__ = ["alerts_router", "bulletins_router", "ops_router", "rumors_router", "signin_router"]
