"""Builders of open alerts for tests and benchmarks of the router's escalation.

One directory shape (the SPOC, then one backup person; no repeat), one plain notice, and
alerts opened in bulk through the router's own transition (`domain.open_alert`) and
repository (`uow.alerts.apply`), so the rows are exactly what the service writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa

from schemas.notices import NoticeReceived
from services.common.messaging import inbox_messages, outbox_messages
from services.router import domain
from services.router.deps import RouterDeps
from services.router.domain import DirectoryDocument, alert_id_for
from services.router.tables import alert_timeline, alerts, delivery_records

__all__ = [
    "OPENED",
    "add_spoc_then_backup",
    "open_alerts",
    "opening_written",
    "plain_notice",
    "spoc_then_backup",
]


def spoc_then_backup(
    *,
    spoc: uuid.UUID,
    backup: uuid.UUID,
    spoc_channels: Mapping[str, str],
    backup_channels: Mapping[str, str],
    wait_s: float,
) -> DirectoryDocument:
    """A directory whose policy notifies the SPOC, then `backup`, each waiting `wait_s`."""
    return DirectoryDocument.model_validate(
        {
            "people": [
                {"id": str(spoc), "name": "SPOC", "channels": dict(spoc_channels)},
                {"id": str(backup), "name": "Backup", "channels": dict(backup_channels)},
            ],
            "spoc": {"person_id": str(spoc)},
            "policy": {
                "steps": [
                    {"target": "spoc", "wait_s": wait_s},
                    {"target": "person", "person_id": str(backup), "wait_s": wait_s},
                ],
                "repeat": 0,
            },
        }
    )


async def add_spoc_then_backup(
    deps: RouterDeps,
    *,
    spoc: uuid.UUID,
    backup: uuid.UUID,
    version: int,
    wait_s: float,
    at: datetime,
) -> None:
    """Directory `version`: `spoc_then_backup` with a webhook and an e-mail for the SPOC
    and an e-mail for the backup, added and committed."""
    document = spoc_then_backup(
        spoc=spoc,
        backup=backup,
        spoc_channels={"webhook_url": "https://hooks.test/spoc", "email": "s@p.example"},
        backup_channels={"email": "b@p.example"},
        wait_s=wait_s,
    )
    async with deps.unit_of_work() as uow:
        await uow.directory.add(
            version=version,
            document=document,
            digest=f"digest-{version}",
            source="api",
            created_by="t",
            at=at,
        )
        await uow.commit()


def plain_notice(now: datetime, *, summary: str = "Test notice.") -> NoticeReceived:
    """A new Exercise notice with releasable fields only (no restricted fingerprints)."""
    return NoticeReceived(
        notice_id=uuid.uuid4(),
        version=1,
        references=(),
        status="Exercise",
        sent_at=now,
        received_at=now,
        received_via="api",
        operation_type="targeted_arrest",
        public_safety_nexus=True,
        window_start=now + timedelta(hours=1),
        window_end=now + timedelta(hours=5),
        area="District 4",
        summary=summary,
        policy_annotations=(),
        restricted_fingerprints=(),
        fingerprint_key_id="test",
    )


async def open_alerts(
    deps: RouterDeps,
    count: int,
    *,
    at: datetime,
    batch: int = 500,
    summary: str = "Test notice.",
    events_sent: bool = False,
) -> list[str]:
    """Open `count` alerts against the current directory, `batch` per transaction; their
    ids. `events_sent` treats their setup events as already published (deleted) (a benchmark that
    must not wait for the relay to drain them)."""
    async with deps.unit_of_work() as uow:
        directory = await uow.directory.current()
    assert directory is not None, "add a directory first"
    ids: list[str] = []
    for start in range(0, count, batch):
        async with deps.unit_of_work() as uow:
            for _ in range(min(batch, count - start)):
                transition = domain.open_alert(
                    plain_notice(at, summary=summary),
                    directory=directory,
                    now=at,
                    horizon=deps.horizon,
                    correlation_id=None,
                )
                await uow.alerts.apply(transition)
                ids.append(str(transition.after.id))
            if events_sent:
                # As the relay leaves a published row: deleted.
                await uow.session.execute(
                    sa.delete(outbox_messages).where(outbox_messages.c.sent_at.is_(None))
                )
            await uow.commit()
    return ids


# What a notice.received's opening leaves (`opening_written`): the alert, its timeline
# (triggered + 2 notified), 2 delivery records, 1 alert.triggered event, 1 inbox claim.
OPENED = [1, 3, 2, 1, 1]


async def opening_written(deps: RouterDeps, notice: NoticeReceived, message_id: str) -> list[int]:
    """[alerts, timeline entries, delivery records, alert.triggered events, inbox rows]
    of `notice`'s alert and the message that opened it."""
    alert_id = str(alert_id_for(notice.notice_id))
    counted = (
        (alerts, alerts.c.notice_id == str(notice.notice_id)),
        (alert_timeline, alert_timeline.c.alert_id == alert_id),
        (delivery_records, delivery_records.c.aggregate_id == alert_id),
        (
            outbox_messages,
            (outbox_messages.c.key == alert_id)
            & (outbox_messages.c.event_type == "alert.triggered"),
        ),
        (inbox_messages, inbox_messages.c.message_id == message_id),
    )
    async with deps.sessions() as session:
        return [
            int(
                (
                    await session.execute(sa.select(sa.func.count()).select_from(t).where(w))
                ).scalar_one()
            )
            for t, w in counted
        ]
