"""Whether a relay of another process listens for this component's NOTIFYs (PostgreSQL).

A commit that writes outbox rows NOTIFYs `aviso_outbox_<component>` so that the relays
(and the commit watchers, `watch_commits`) of the component's OTHER processes hear of it;
this process's own relays hear of it without the database. With one process per
component, as `make run` and the bench run them, nobody acts on those NOTIFYs, and on
PostgreSQL 15 each one still costs the server: the notifying commit takes the queue's
lock and signals EVERY listening connection of the database (whatever its channel),
and each of them wakes and reads the queue (measured in the bench's PostgreSQL split:
three NOTIFYs per notice, three listeners).

So a relay's LISTEN connection is named after its channel (`application_name`), and:

- right after it LISTENs, it counts the other connections of that name in its
  database (other processes' relays) and announces itself with a NOTIFY of this
  process's token, which their relays take as "a peer is here" (and as a wake-up, as
  any NOTIFY);
- hearing any other process's NOTIFY, it knows a peer is there;
- when idle it counts again now and then (`RECOUNT_S`), so a peer that left (its
  connection closed with it, even on a crash) stops costing NOTIFYs.

With no peer, the process's pooled connections are told to skip the NOTIFY
(`db.set_outbox_notify`, a session setting the NOTIFY's SQL reads). Whenever the relay
does not listen (not started, its connection lost) the default holds: every commit
NOTIFYs, as before. A peer that starts is heard of by its announcement; a commit of
this process in the moment between is found by the peer's claim at start and its safety
poll, as a NOTIFY lost with a connection always was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from services.common.db import asyncpg_dsn, set_outbox_notify
from services.common.outbox.writing import _PROCESS_TOKEN as PROCESS_TOKEN

__all__ = ["RECOUNT_S", "ListenerPeers", "listener_name"]

# How often an idle relay counts its peers again (a departure only costs NOTIFYs).
RECOUNT_S = 30.0

# pg_stat_activity lists the whole cluster; a NOTIFY reaches only its own database.
_COUNT_OTHERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
    " AND datname = current_database() AND pid <> pg_backend_pid()"
)


def listener_name(component: str) -> str:
    """The channel a component's relays LISTEN on, and their connections' name."""
    return f"aviso_outbox_{component}"


class ListenerPeers:
    """What one relay knows of other processes' relays of its component."""

    def __init__(self, component: str, *, clock: Callable[[], float]) -> None:
        self._component = component
        self._channel = listener_name(component)
        self._clock = clock
        # Bumped by every peer heard of: a count that began before it may be stale.
        self._heard = 0
        self._counted_at: float | None = None

    async def listen(
        self, url: URL, notified: Callable[[Any, int, str, str], None], lost: Callable[[], None]
    ) -> Any:
        """Open the relay's LISTEN connection (named after its channel) to `url`, count the
        other processes' relays, then announce this one (a NOTIFY of this process's token).
        `notified` gets the channel's NOTIFYs; `lost` is called if the connection ends."""
        import asyncpg

        def ended(*_: object) -> None:
            self.left()  # until it listens again, every commit NOTIFYs (and the relay polls)
            lost()

        listener = await asyncpg.connect(
            asyncpg_dsn(url), timeout=5, server_settings={"application_name": self._channel}
        )
        try:
            await listener.add_listener(self._channel, notified)
            listener.add_termination_listener(ended)
            await self.recount(listener)
            await listener.execute("SELECT pg_notify($1, $2)", self._channel, PROCESS_TOKEN)
        except BaseException:
            listener.terminate()
            self.left()
            raise
        return listener

    async def recount(self, listener: Any) -> None:
        """Count the other processes' relays listening on the channel (one round trip)."""
        heard = self._heard
        self._counted_at = self._clock()
        others = int(await listener.fetchval(_COUNT_OTHERS, self._channel))
        if others:
            set_outbox_notify(self._component, True)
        elif heard == self._heard:  # nobody announced themselves meanwhile
            set_outbox_notify(self._component, False)

    async def recount_if_due(self, listener: Any) -> None:
        """An idle relay's count, once per `RECOUNT_S` (a failure: the next one)."""
        if self._counted_at is not None and self._clock() - self._counted_at < RECOUNT_S:
            return
        with contextlib.suppress(Exception):
            await self.recount(listener)

    def heard_peer(self) -> None:
        """Another process's NOTIFY arrived: it listens or writes, so NOTIFY again."""
        self._heard += 1
        set_outbox_notify(self._component, True)

    def left(self) -> None:
        """This relay no longer listens: the default (every commit NOTIFYs) holds."""
        self._heard += 1
        self._counted_at = None
        set_outbox_notify(self._component, None)
