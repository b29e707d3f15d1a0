"""Orders accepted by a caller's own statement: the accept INSERT as a fragment to carry.

Why: a service whose write already is one statement (router's new alert: its row, its
timeline entries and its outbox rows in one INSERT with CTEs) paid one more round trip
for the engine's accept INSERT beside it. Here the engine prepares the accept as it
always does (give-up times, the hand-off's claims and their resolution, the rows) and
gives the caller the INSERT as SQL text plus its values; the caller runs it as one more
data-modifying CTE of its own statement and gives back the delivery ids that statement
returned. The engine then learns of them exactly as after its own INSERT: handed-off
records go to dispatch after the commit, the others wake the dispatcher.

The engine keeps the deliveries table's knowledge (its columns, its conflict rule, the
rows' values); the caller knows only the fragment, its parameters and RETURNING
`delivery_id`. PostgreSQL only: elsewhere the caller accepts with `accept_many`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.delivery.handoff import HandOff, hand_off
from services.common.delivery.insert_query import PENDING_COLUMNS, pending_row
from services.common.delivery.plan import DeliveryPlan
from services.common.delivery.records import DeliveryOrder
from services.common.delivery.store import Accepted

__all__ = ["PreparedAccept", "accept_insert_params", "accept_insert_sql", "prepare"]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]

# What the engine does once the caller's statement ran: (session, the hand-off prepared,
# the delivery ids that were new) -> how many were new.
Finish = Callable[[AsyncSession, HandOff, Collection[uuid.UUID]], int]


@dataclass(frozen=True)
class PreparedAccept:
    """Orders ready to be inserted by the caller's statement (`accept_insert_sql`)."""

    accepted: list[Accepted]
    handing: HandOff
    now: datetime
    owner: str
    done: Finish

    def arrays(self, prefix: str) -> dict[str, list[object]]:
        """The fragment's values: one list per column, named `<prefix><column>`."""
        rows = [
            pending_row(a.order, a.give_up_at, a.claimed_until, now=self.now, owner=self.owner)
            for a in self.accepted
        ]
        return {f"{prefix}{name}": [row[name] for row in rows] for name in PENDING_COLUMNS}

    def finish(self, session: AsyncSession, new: Iterable[str]) -> int:
        """The caller's statement ran in `session`'s transaction and returned `new` (the
        ids its fragment inserted; none if it inserted nothing): the engine takes over as
        after `accept_many`. How many were new."""
        return self.done(session, self.handing, {uuid.UUID(i) for i in new})


async def prepare(
    session: AsyncSession,
    orders: Sequence[DeliveryOrder],
    *,
    plan: DeliveryPlan,
    room: int,
    now: datetime,
    lease: timedelta,
    owner: str,
    service: str,
    done: Finish,
) -> PreparedAccept:
    """The engine's accept up to its INSERT: each order's give-up time, and up to `room`
    of them handed off (`handoff`: resolved in `session`, to be inserted as `owner`'s
    claims until `now + lease`)."""
    accepted = [
        Accepted(order, order.give_up_at or now + plan.give_up_after(order)) for order in orders
    ]
    handing = await hand_off(session, accepted, plan=plan, room=room, now=now, service=service)
    return PreparedAccept(
        accepted=handing.claiming(accepted, until=now + lease),
        handing=handing,
        now=now,
        owner=owner,
        done=done,
    )


def _quoted(name: str) -> str:
    return str(_PG.identifier_preparer.quote(name))


@cache
def accept_insert_sql(table: sa.Table, *, prefix: str, where: str = "") -> str:
    """The accept INSERT of `table` as text: the rows of `PreparedAccept.arrays(prefix)`, in
    their order, a known delivery id left as it is, RETURNING the ids that were new.

    `where` is a condition of the caller's statement (`WHERE EXISTS (SELECT 1 FROM x)`)
    under which the rows go in at all.
    """
    names = ", ".join(_quoted(name) for name in PENDING_COLUMNS)
    arrays = ", ".join(
        f"CAST(:{prefix}{name} AS {table.c[name].type.compile(dialect=_PG)}[])"
        for name in PENDING_COLUMNS
    )
    # Identifiers come from the table's metadata, quoted by the dialect; values are bound.
    return (
        f"INSERT INTO {_quoted(table.name)} ({names}) "  # noqa: S608
        f"SELECT {names} FROM unnest({arrays}) WITH ORDINALITY AS r({names}, _n) "
        f"{where} ORDER BY _n ON CONFLICT DO NOTHING RETURNING delivery_id"
    )


def accept_insert_params(table: sa.Table, *, prefix: str) -> list[sa.BindParameter[object]]:
    """The fragment's typed parameters (each column's own bind processing applies: JSON
    serialised, aware timestamps), for the caller's `text().bindparams(...)`."""
    return [
        sa.bindparam(f"{prefix}{name}", type_=postgresql.ARRAY(table.c[name].type))
        for name in PENDING_COLUMNS
    ]
