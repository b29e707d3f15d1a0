"""Alerts (with their durable timers) and their timeline, in the caller's transaction.

`apply` is the only write: a decided `Transition` becomes its row change, its timeline
entries, its outbox events and its delivery orders (accepted by the delivery engine into
`delivery_records`) at once. Times are UTC; SQLite hands datetimes back naive,
so reads re-attach UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bulk import insert_rows
from services.common.cloudevents import new_event
from services.common.delivery.accepting import PreparedAccept
from services.common.delivery.records import DeliveryOrder
from services.common.inbox import Claim
from services.common.outbox import (
    enqueue,
    enqueue_all,
    hand_over,
    lease_values,
    outbox_row,
    taker_for,
)
from services.router.domain import (
    OPEN_STATES,
    AlertRecord,
    EscalationGuard,
    Publication,
    Transition,
    VersionGuard,
)
from services.router.repository.alert_changes import (
    changed_columns,
    foldable,
    guarded,
    plain,
)
from services.router.repository.alert_guarded import update_guarded
from services.router.repository.alert_openings import (
    PendingOpening,
    open_params,
    opening_entries,
)
from services.router.repository.alert_rows import (
    lean_record_of,
    record,
    record_of,
    timeline_values,
)
from services.router.repository.alert_statements import (
    NO_DELIVERIES,
    OUTBOX_COLUMNS,
    TIMELINE_COLUMNS,
    alert_by_id,
    alert_by_notice,
    alerts_by_ids,
    alerts_by_ids_direct,
    alerts_page,
    fetch_each,
    open_alert_claiming_direct,
    open_alert_direct,
    open_alert_statement,
    versioned_update,
    versioned_update_direct,
)
from services.router.repository.alert_timeline import AlertTimeline
from services.router.repository.alert_timers import AlertTimers
from services.router.tables import alert_timeline, alerts

__all__ = ["DeliveryIntake", "SqlAlertRepository"]


class DeliveryIntake(Protocol):
    """The delivery engine as router's writes see it: orders go in, in the caller's
    transaction, by the engine's own statement or (PostgreSQL) carried by router's."""

    async def accept_many(self, session: AsyncSession, orders: Sequence[DeliveryOrder]) -> int: ...

    async def prepare_accept(
        self, session: AsyncSession, orders: Sequence[DeliveryOrder]
    ) -> PreparedAccept: ...


# What `apply_all` knows how to write in bulk. A transition carrying anything else (a
# field added to `Transition` later) goes through `apply`, so nothing is ever dropped.
_BATCHED_PARTS = frozenset({"before", "after", "timeline", "events", "guard", "deliveries"})
_OTHER_PARTS = tuple(f.name for f in fields(Transition) if f.name not in _BATCHED_PARTS)


# Session info key: alerts written by `open` whose orders are being accepted.
_OPENING = "router.alerts_opening"
# Session info key: the outcome batch's alerts, read by the engine's settling statement.
SETTLED_READ = "router.alerts_settled"


class SqlAlertRepository(AlertTimers, AlertTimeline):
    """Alerts and their timelines; `source` names this service on the events it enqueues.

    `accept` is the delivery engine's, for transitions that order deliveries. The timers'
    reads (due timers and expiries, locked; the next deadline) are `AlertTimers`', the
    timeline's reads `AlertTimeline`'s.
    """

    def __init__(
        self, session: AsyncSession, *, source: str, accept: DeliveryIntake | None = None
    ) -> None:
        self._session = session
        self._source = source
        self._accept = accept

    # --- reads -----------------------------------------------------------------------

    async def get(self, alert_id: uuid.UUID, *, lock: bool = False) -> AlertRecord | None:
        """One alert; `lock` holds its row until the transaction ends."""
        # Acknowledgement, updates and the timer serialise on this lock (PostgreSQL);
        # SQLite's BEGIN IMMEDIATE already serialises every writing transaction.
        found = await self._session.execute(alert_by_id(lock=lock), {"alert_id": str(alert_id)})
        row = found.first()
        return record(row) if row is not None else None

    async def get_many(self, alert_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AlertRecord]:
        """The alerts of `alert_ids` that exist, in one query (unlocked)."""
        return await self._get_many(alert_ids, lean=False)

    async def get_many_lean(self, alert_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AlertRecord]:
        """`get_many` without the content and snapshot (left unread: `UNREAD_CONTENT`).

        The outcome batch reads a batch's alerts only to decide their state changes and
        to name them in timeline entries, events and log lines: the two JSON documents
        were the most of each row's bytes and of its reading's CPU (their parse).
        """
        return await self._get_many(alert_ids, lean=True)

    async def _get_many(
        self, alert_ids: Collection[uuid.UUID], *, lean: bool
    ) -> dict[uuid.UUID, AlertRecord]:
        opened: dict[uuid.UUID, AlertRecord] = self._session.info.get(_OPENING, {})
        known = {i: opened[i] for i in alert_ids if i in opened}
        rest = [i for i in alert_ids if i not in known]
        # Taken once: a later read in this transaction must see its own writes.
        carried = self._session.info.pop(SETTLED_READ, None)
        if lean and carried is not None and {str(i) for i in rest} <= carried[0]:
            return known | {r.id: r for r in map(lean_record_of, carried[1])}
        if not rest:
            return known
        ids = {"alert_ids": sorted(map(str, rest))}
        dialect = self._session.get_bind().dialect.name
        rows: Sequence[Mapping[str, Any]]
        if dialect == "postgresql":
            # Every outcome batch reads its alerts: straight to asyncpg (direct.py).
            rows = await alerts_by_ids_direct(lean=lean).fetch(self._session, ids)
        else:
            found = await self._session.execute(alerts_by_ids(dialect, lean=lean), ids)
            rows = [cast(Mapping[str, Any], row._mapping) for row in found]
        read = lean_record_of if lean else record_of
        return known | {r.id: r for r in map(read, rows)}

    async def for_notice(self, notice_id: uuid.UUID, *, lock: bool = False) -> AlertRecord | None:
        """The alert of a notice, if it has one."""
        query = alert_by_notice(lock=lock)
        row = (await self._session.execute(query, {"notice_id": str(notice_id)})).first()
        return record(row) if row is not None else None

    async def page(
        self,
        *,
        states: Sequence[str],
        limit: int,
        offset: int,
        notice_id: uuid.UUID | None = None,
    ) -> list[AlertRecord]:
        """Alerts, newest first, optionally only in `states` or only the notice's."""
        query = alerts_page(states, str(notice_id) if notice_id is not None else None)
        rows = await self._session.execute(query.limit(limit).offset(offset))
        return [record(row) for row in rows]

    async def count_by_state(self) -> dict[str, int]:
        """How many alerts are in each state.

        Unresolved alerts by state through the partial index of unresolved alerts, and all
        alerts counted (from an index, where PostgreSQL finds the pages all-visible):
        resolved ones are the difference. No index names `state` (router_0007).
        """
        unresolved = sa.select(alerts.c.state, sa.func.count()).where(
            alerts.c.resolved_at.is_(None)
        )
        every = sa.select(sa.null(), sa.func.count()).select_from(alerts)  # state NULL: all
        query = sa.union_all(unresolved.group_by(alerts.c.state), every)
        counts = {state: int(count) for state, count in await self._session.execute(query)}
        counts["resolved"] = counts.pop(None) - sum(counts.values())
        return counts

    # --- the one write ----------------------------------------------------------------

    async def apply(self, transition: Transition) -> bool:
        """Write the row, timeline, events and delivery orders; False if the guard failed.

        A failed guard (another instance fired the timer, an ack cleared it) writes nothing.
        """
        changes = changed_columns(transition)
        if transition.before is None:
            await self._session.execute(sa.insert(alerts).values(**changes))
        elif changes or transition.guard is not None:
            # A guard with nothing to change still asks its compare-and-set (and locks the
            # row): an UPDATE needs a column to set, so it sets one to what it holds.
            values = changes or {"notice_version": alerts.c.notice_version}
            result = await self._session.execute(
                sa.update(alerts).where(*guarded(transition)).values(**values)
            )
            if transition.guard is not None and getattr(result, "rowcount", 0) != 1:
                return False
        alert_id = transition.after.id
        await self._insert_timeline(
            [timeline_values(alert_id, entry) for entry in transition.timeline]
        )
        await self._publish(transition.events)
        await self._accept_orders(transition.deliveries)
        return True

    async def _publish(self, publications: Sequence[Publication]) -> None:
        """Put the events in the outbox, in this transaction."""
        if len(publications) == 1:
            publication = publications[0]
            await enqueue(
                self._session,
                publication.event,
                source=self._source,
                correlation_id=publication.correlation_id,
            )
        elif publications:
            await enqueue_all(
                self._session,
                [(p.event, p.correlation_id) for p in publications],
                source=self._source,
            )

    async def open(
        self,
        transition: Transition,
        *,
        directory_version: int,
        directory_digest: str,
        claim: Claim | None = None,
    ) -> bool:
        """Write a new alert as `apply` does, unless its notice has an alert already or the
        directory in force is no longer the one it was opened from; whether it was written.

        No read first: the checks are part of the INSERT (`open_alert_statement`). With
        the consumer's inbox `claim` (PostgreSQL, nothing sent yet in this unit of work)
        the claim goes in the same statement, which commits by itself, and nothing is
        written if the message was recorded already (`open_alert_claiming_direct`).
        """
        dialect = self._session.get_bind().dialect.name
        params = open_params(
            transition, directory_version, directory_digest, postgres=dialect == "postgresql"
        )
        if claim is not None:
            if dialect != "postgresql":
                raise ValueError("only PostgreSQL carries the inbox claim in the opening")
            params.update({f"c_{name}": value for name, value in claim.row().items()})
        if dialect == "postgresql":
            pending = await self._pending_opening(transition, params)
            # Straight to asyncpg, in the consumer's transaction or as one of its own.
            statement = open_alert_claiming_direct() if claim is not None else open_alert_direct()
            row = await statement.fetchrow(self._session, params, lone=claim is not None)
            return self._opened(pending, row)
        found = (await self._session.execute(open_alert_statement(dialect), params)).first()
        if found is None:
            return False
        await self._insert_timeline(opening_entries(transition))
        await self._publish(transition.events)
        with self._opening(transition.after):
            await self._accept_orders(transition.deliveries)
        return True

    async def open_many(
        self,
        transitions: Sequence[Transition],
        *,
        directory_version: int,
        directory_digest: str,
        claims: Sequence[Claim] | None = None,
    ) -> list[bool]:
        """`open` of each new alert, from one directory, in the transaction (PostgreSQL): all
        the statements sent in one round trip; whether each alert was written.

        One prepared statement executed once per alert, pipelined (asyncpg's `fetchmany`),
        each execution seeing the ones before it, as N `open`s in a row would; only an
        alert that went in answers a row, which names it. Of two openings of one alert
        (one notice under two message ids) only the first can go in: a later one meets
        its row, and an earlier one that wrote nothing met what the later one meets.

        With the consumer's inbox `claims` (one per transition; nothing sent yet in this
        unit of work) each execution carries its claim as `open` does, and the pipeline
        goes without BEGIN: one implicit transaction up to its Sync, committed as it
        answers, rolled back whole (every claim with it) if any execution fails.
        """
        params = [
            open_params(t, directory_version, directory_digest, postgres=True) for t in transitions
        ]
        if claims is not None:
            for each, claim in zip(params, claims, strict=True):
                each.update({f"c_{name}": value for name, value in claim.row().items()})
        pending = [
            await self._pending_opening(transition, each)
            for transition, each in zip(transitions, params, strict=True)
        ]
        statement = open_alert_direct() if claims is None else open_alert_claiming_direct()
        rows = await fetch_each(
            self._session, statement, [p.params for p in pending], lone=claims is not None
        )
        by_id = {row["id"]: row for row in rows}
        # Popped: the row goes to the first opening of its alert, never to a second one.
        return [self._opened(p, by_id.pop(str(p.alert.id), None)) for p in pending]

    async def _pending_opening(
        self, transition: Transition, params: dict[str, object]
    ) -> PendingOpening:
        """`open`'s PostgreSQL statement values (added to `params`): the alert, its entries,
        its outbox rows and the engine's records of its deliveries (prepared first: a
        hand-off resolves them), and what `_opened` needs once it ran."""
        taker = taker_for(self._session)
        entries = opening_entries(transition)
        queued = self._outbox_rows(transition.events)
        params.update({f"t_{n}": [e[n] for e in entries] for n in TIMELINE_COLUMNS})
        params.update({f"o_{n}": [q[n] for q in queued] for n in OUTBOX_COLUMNS})
        params.update(lease_values(taker))
        prepared: PreparedAccept | None = None
        if transition.deliveries:
            intake = self._intake()
            with self._opening(transition.after):
                prepared = await intake.prepare_accept(self._session, transition.deliveries)
            params.update(prepared.arrays("d_"))
        else:
            params.update({name: [] for name in NO_DELIVERIES})
        return PendingOpening(transition.after, params, taker, queued, prepared)

    def _opened(self, pending: PendingOpening, row: Any) -> bool:
        """The opening statement answered `row` (None: nothing went in); whether it opened."""
        if pending.prepared is not None:
            # Told even when nothing went in (no row): nothing is then handed off.
            accepted = (row["accepted_ids"] or ()) if row is not None else ()
            pending.prepared.finish(self._session, accepted)
        if row is None:
            return False
        leased = row["leased_ids"], row["leased_messages"]
        hand_over(self._session, pending.taker, pending.queued, *leased)
        return True

    @contextmanager
    def _opening(self, alert: AlertRecord) -> Iterator[None]:
        """While the engine accepts a new alert's deliveries it may hand them off,
        resolving them in this transaction: it then sees the alert as written (or about
        to be, in the same statement), from memory instead of a read and a parse of its
        content. Only while accepting: nothing else changes the alert meanwhile."""
        opening = self._session.info.setdefault(_OPENING, {})
        opening[alert.id] = alert
        try:
            yield
        finally:
            opening.pop(alert.id, None)

    def _outbox_rows(self, publications: Sequence[Publication]) -> list[dict[str, object]]:
        """The outbox rows of `publications`, for a statement that writes them itself."""
        now = datetime.now(UTC)
        events = (
            new_event(p.event, source=self._source, correlation_id=p.correlation_id)
            for p in publications
        )
        return [outbox_row(event, now) for event in events]

    async def apply_all(self, transitions: Sequence[Transition]) -> list[bool]:
        """`apply` each transition, in a handful of statements; whether each guard passed.

        Three kinds go in bulk: escalation-guarded changes of rows this transaction holds
        locked (a batch of timers: one guarded UPDATE per row sent together, one read-back
        telling which guards passed), version-guarded changes of a few plain columns (a
        batch of delivery outcomes: one UPDATE ... RETURNING per distinct change), and
        transitions that change no row (timeline entries and events only). Then the
        timeline entries and the events of those that passed in one INSERT each, and their
        delivery orders to the engine. Anything else goes through `apply`, one at a time,
        after them; so does a second row change of an alert already changed in bulk.
        """
        timers: list[int] = []
        versioned: list[int] = []
        notes: list[int] = []
        changing: set[uuid.UUID] = set()
        for i, t in enumerate(transitions):
            if t.before is None or any(getattr(t, name) for name in _OTHER_PARTS):
                continue
            if t.guard is None and not changed_columns(t):
                notes.append(i)
            elif t.after.id in changing:
                continue
            elif isinstance(t.guard, EscalationGuard) and t.guard.states == OPEN_STATES:
                timers.append(i)
                changing.add(t.after.id)
            elif isinstance(t.guard, VersionGuard) and plain(changed_columns(t)):
                versioned.append(i)
                changing.add(t.after.id)
        passed = await update_guarded(self._session, [transitions[i] for i in timers])
        results: dict[int, bool] = {i: passed[transitions[i].after.id] for i in timers}
        fold = foldable(transitions, versioned=versioned, notes=notes, others=len(timers))
        folded = [transitions[i] for i in fold]
        took, wrote = await self._update_versioned([transitions[i] for i in versioned], folded)
        results.update({i: transitions[i].after.id in took for i in versioned})
        results.update(dict.fromkeys(notes, True))
        passing = [i for i in sorted(results) if results[i]]
        done = [transitions[i] for i in passing]
        rest = [transitions[i] for i in passing if not (wrote and i in fold)]
        await self._insert_timeline(
            [timeline_values(t.after.id, e) for t in rest for e in t.timeline]
        )
        events = [(p.event, p.correlation_id) for t in rest for p in t.events]
        await enqueue_all(self._session, events, source=self._source)
        await self._accept_orders([order for t in done for order in t.deliveries])
        for i, transition in enumerate(transitions):
            if i not in results:
                results[i] = await self.apply(transition)
        return [results[i] for i in range(len(transitions))]

    async def _insert_timeline(self, rows: list[dict[str, object]]) -> None:
        """Timeline rows in one statement (an executemany is one per row on PostgreSQL)."""
        await insert_rows(self._session, alert_timeline, rows)

    async def _update_versioned(
        self, transitions: Sequence[Transition], notes: Sequence[Transition]
    ) -> tuple[set[uuid.UUID], bool]:
        """The version-guarded changes, one UPDATE per distinct change; the rows that took,
        and whether the `notes`' entries and events (needing no guard) went in with the
        first (PostgreSQL)."""
        groups: dict[tuple[frozenset[str], int, tuple[tuple[str, object], ...]], list[str]] = {}
        for t in transitions:
            assert isinstance(t.guard, VersionGuard)
            changes = tuple(sorted(changed_columns(t).items()))
            key = (t.guard.states, t.guard.notice_version, changes)
            groups.setdefault(key, []).append(str(t.after.id))
        dialect = self._session.get_bind().dialect.name
        took: set[uuid.UUID] = set()
        carried: Sequence[Transition] = notes if dialect == "postgresql" else ()
        if carried and not groups:
            # Notes alone (every outcome's alert already marked): one statement for their
            # entries and events, as when they ride with a change.
            groups[(frozenset(), 0, ())] = []
        for (states, version, changes), ids in groups.items():
            params: dict[str, object] = {f"v_{name}": value for name, value in changes}
            if changes:
                params.update(b_alert_ids=ids, b_states=sorted(states), b_notice_version=version)
            if dialect != "postgresql":
                statement = versioned_update(dialect, tuple(name for name, _ in changes))
                result = await self._session.execute(statement, params)
                took.update(uuid.UUID(r) for r in result.scalars())
                continue
            # The first group carries the notes; the others carry empty arrays.
            entries = [timeline_values(t.after.id, e) for t in carried for e in t.timeline]
            queued = self._outbox_rows([p for t in carried for p in t.events])
            params.update({f"t_{n}": [r[n] for r in entries] for n in TIMELINE_COLUMNS})
            params.update({f"o_{n}": [r[n] for r in queued] for n in OUTBOX_COLUMNS})
            taker = taker_for(self._session)
            params.update(lease_values(taker))
            names = tuple(name for name, _ in changes)
            row = await versioned_update_direct(names).fetchrow(self._session, params)
            took.update(uuid.UUID(r) for r in row["ids"] or ())
            hand_over(self._session, taker, queued, row["leased_ids"], row["leased_messages"])
            carried = ()
        return took, dialect == "postgresql" and bool(notes) and bool(groups)

    async def _accept_orders(self, orders: Sequence[DeliveryOrder]) -> None:
        """Hand the delivery orders to the engine, in this transaction."""
        if not orders:
            return
        # The whole batch's orders in one bulk statement.
        await self._intake().accept_many(self._session, orders)

    def _intake(self) -> DeliveryIntake:
        if self._accept is None:
            raise RuntimeError("this unit of work has no delivery engine to accept orders")
        return self._accept
