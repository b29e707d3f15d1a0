"""A LISTEN connection that looks to the relays of this process like another process's
relay (outbox/peers.py): with it, this process's commits NOTIFY again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

from services.common import db
from services.common.db import asyncpg_dsn
from services.common.outbox.peers import listener_name

__all__ = ["peer_listener"]


@asynccontextmanager
async def peer_listener(url: URL, component: str, heard: Callable[..., None]) -> AsyncIterator[Any]:
    """Listen on `component`'s channel as a peer relay does (named after it, announced);
    yield once this process's relays know of it. `heard` gets what arrives after that."""
    channel = listener_name(component)
    listener = await asyncpg.connect(
        asyncpg_dsn(url), server_settings={"application_name": channel}
    )
    try:
        # Announced before it listens, so `heard` gets only the commits that follow.
        await listener.execute("SELECT pg_notify($1, 'a-test-peer')", channel)
        await listener.add_listener(channel, heard)
        async with asyncio.timeout(30):
            while db._outbox_notify.get(component, True) is False:  # noqa: ASYNC110 - a flag, nothing to await
                await asyncio.sleep(0.01)
        yield listener
    finally:
        await _close_and_wait_gone(listener, url, channel)


async def _close_and_wait_gone(listener: Any, url: URL, channel: str) -> None:
    """Close the peer and return once its backend has left pg_stat_activity: a close only
    sends Terminate, and a recount made before the backend exits would still find it."""
    pid = listener.get_server_pid()
    await listener.close()
    watcher = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # Waits on the server (at most 30 s) for a backend still on its way out.
        await watcher.execute(
            "SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity"
            " WHERE pid = $1 AND application_name = $2",
            pid,
            channel,
        )
    finally:
        await watcher.close()
