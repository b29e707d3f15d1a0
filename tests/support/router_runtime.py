"""A router runtime on a migrated database, its clock stopped, its engine never run.

For integration tests that drive router's use cases and delivery engine by hand (and
count what they send): the runtime's set-up and teardown, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from services.common.migrations import upgrade
from services.router.app import RouterRuntime, default_senders
from services.router.config import RouterSettings

__all__ = ["stopped_router"]


@asynccontextmanager
async def stopped_router(settings: RouterSettings, *, at: datetime) -> AsyncIterator[RouterRuntime]:
    """Router's schema migrated, then a runtime whose clock always reads `at`; its
    senders and engines closed afterwards."""
    await upgrade(settings, "router")
    runtime = RouterRuntime(settings=settings, senders=default_senders(settings), clock=lambda: at)
    try:
        yield runtime
    finally:
        await runtime.senders.close()
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
