"""SMS subscribers in the caller's transaction (never commits)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.base import Language
from services.rumor_control.community.keywords import SubscriberState
from services.rumor_control.repository import aware
from services.rumor_control.repository._sql import insert_for
from services.rumor_control.tables import sms_subscribers

__all__ = ["SqlSubscribers", "Subscriber", "Subscribers"]


@dataclass(frozen=True)
class Subscriber:
    """One subscriber; `number_sealed` opens only with the number keys (restricted)."""

    subscriber_id: uuid.UUID
    number_hash: str
    number_sealed: str
    language: Language
    state: SubscriberState
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None

    def __repr__(self) -> str:  # the sealed number and its hash stay out of tracebacks
        return f"Subscriber({self.subscriber_id}, {self.language}, {self.state})"


class Subscribers(Protocol):
    """What use cases and the delivery plan need of the subscribers."""

    async def by_hash(self, number_hash: str, *, for_update: bool = False) -> Subscriber | None: ...
    async def get(self, subscriber_id: uuid.UUID) -> Subscriber | None: ...
    async def save(self, subscriber: Subscriber) -> bool: ...
    async def active(self) -> list[tuple[uuid.UUID, Language]]: ...


def _subscriber(row: Any) -> Subscriber:
    return Subscriber(
        subscriber_id=uuid.UUID(row.subscriber_id),
        number_hash=row.number_hash,
        number_sealed=row.number_sealed,
        language=cast(Language, row.language),
        state=cast(SubscriberState, row.state),
        created_at=cast(datetime, aware(row.created_at)),
        updated_at=cast(datetime, aware(row.updated_at)),
        confirmed_at=aware(row.confirmed_at),
    )


class SqlSubscribers:
    """`Subscribers` over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_hash(self, number_hash: str, *, for_update: bool = False) -> Subscriber | None:
        """The subscriber of a number's keyed hash, if any (row-locked on request)."""
        query = sa.select(sms_subscribers).where(sms_subscribers.c.number_hash == number_hash)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).one_or_none()
        return None if row is None else _subscriber(row)

    async def get(self, subscriber_id: uuid.UUID) -> Subscriber | None:
        """One subscriber by id."""
        query = sa.select(sms_subscribers).where(
            sms_subscribers.c.subscriber_id == str(subscriber_id)
        )
        row = (await self._session.execute(query)).one_or_none()
        return None if row is None else _subscriber(row)

    async def save(self, subscriber: Subscriber) -> bool:
        """Insert a new subscriber or update its language, state and times; False (nothing
        written) when a new subscriber's number has one already."""
        values = {
            "number_hash": subscriber.number_hash,
            "number_sealed": subscriber.number_sealed,
            "language": subscriber.language,
            "state": subscriber.state,
            "created_at": subscriber.created_at,
            "updated_at": subscriber.updated_at,
            "confirmed_at": subscriber.confirmed_at,
        }
        key = str(subscriber.subscriber_id)
        updated = await self._session.execute(
            sa.update(sms_subscribers)
            .where(sms_subscribers.c.subscriber_id == key)
            .values(
                language=subscriber.language,
                state=subscriber.state,
                updated_at=subscriber.updated_at,
                confirmed_at=subscriber.confirmed_at,
            )
        )
        if cast(Any, updated).rowcount > 0:
            return True
        # Two first texts from one number at once: both found no subscriber, and the second
        # insert waits for the first to commit, then writes nothing (instead of failing on
        # the unique number hash).
        inserted = await self._session.execute(
            insert_for(self._session)(sms_subscribers)
            .values(subscriber_id=key, **values)
            .on_conflict_do_nothing(index_elements=["number_hash"])
        )
        return bool(cast(Any, inserted).rowcount)

    async def active(self) -> list[tuple[uuid.UUID, Language]]:
        """Every active subscriber's id and language (who gets the next bulletin)."""
        rows = await self._session.execute(
            sa.select(sms_subscribers.c.subscriber_id, sms_subscribers.c.language)
            .where(sms_subscribers.c.state == "active")
            .order_by(sms_subscribers.c.subscriber_id)
        )
        return [(uuid.UUID(i), cast(Language, lang)) for i, lang in rows]
