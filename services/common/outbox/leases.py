"""The heartbeat that keeps a relay's claims on outbox rows while it publishes them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

__all__ = ["LeaseKeeper"]


class LeaseKeeper:
    """Renews a round's claims every `every_s` until stopped (the relay's heartbeat).

    Renewal and `stop` take one lock, so once `stop` returns no renewal is running or
    will start: the relay can then settle its rows without a renewal racing it.
    """

    def __init__(self, *, renew: Callable[[], Awaitable[None]], every_s: float) -> None:
        self._renew = renew
        self._every_s = every_s
        self._stopped = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseKeeper:
        self._task = asyncio.create_task(self._beat(), name="outbox-lease-heartbeat")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        async with self._lock:
            self._stopped.set()
        if self._task is not None:
            await self._task

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), timeout=self._every_s)
            async with self._lock:
                if self._stopped.is_set():
                    return
                await self._renew()
