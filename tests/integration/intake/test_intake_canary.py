"""Canaries: restricted values that must never surface outside the contact's own view.

Every restricted field of a notice holds a unique canary string. After the notice is
created, rejected in variants, updated, read by every reader and cancelled, none of
the canaries may appear in any log line (through the real processor chain, written to
a file), in any message on any Kafka topic, in any response to `ops` or the field
office, or anywhere in the intake database.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

import services.common.logging.setup as log_setup
from schemas.topics import NOTICES
from services.common.auth import Role
from services.common.logging import configure_logging, own_lines
from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import notice_body, revision_body, run_intake
from tests.support.apps import issue_test_token
from tests.support.kafka_io import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


class Canaries:
    """Unique strings, one per restricted field; phone numbers must look like numbers."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:10]
        self.values: dict[str, str] = {}

    def __call__(self, field: str) -> str:
        value = f"canary{field}{self.tag}"
        self.values[field] = value
        return value

    def phone(self) -> str:
        digits = str(uuid.uuid4().int)[:10]
        value = f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}"
        self.values["phone"] = value
        return value

    def found_in(self, text: str) -> list[str]:
        # The digits of the phone number are checked in any spacing.
        compact = text.replace(" ", "")
        return [
            field
            for field, value in self.values.items()
            if value in text or value.replace(" ", "") in compact
        ]


def _body(canary: Canaries, version: str) -> dict[str, Any]:
    return notice_body(
        source={
            "field_office_name": canary(f"foname{version}"),
            "agent": {
                "name": canary(f"agent{version}"),
                "phone": canary.phone(),
                "email": f"{canary(f'email{version}')}@example.org",
            },
        },
        restricted={
            "names": [canary(f"name{version}"), canary(f"othername{version}")],
            "addresses": [f"12 {canary(f'address{version}')} Street"],
            "vehicles": [canary(f"vehicle{version}")],
            "exact_locations": [canary(f"location{version}")],
            "free_text": f"Seen near {canary(f'freetext{version}')} at dawn.",
        },
    )


async def _every_message(bootstrap: str) -> list[bytes]:
    """Key, headers and value of every record on every topic of the broker, as bytes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"canary-scan-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    blobs: list[bytes] = []

    async def fetch() -> None:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for record in records:
                blobs.extend((record.value or b"", record.key or b""))
                blobs.extend(value for _, value in record.headers)

    try:
        consumer.subscribe(pattern=".*")
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            await fetch()
        assigned = list(consumer.assignment())
        assert assigned, "no partitions assigned"
        ends = await consumer.end_offsets(assigned)
        while time.monotonic() < deadline:
            behind = [tp for tp in assigned if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            await fetch()
        else:
            raise AssertionError("could not read every topic to its end")
        return blobs
    finally:
        await consumer.stop()


@contextmanager
def logging_to(path: Path) -> Iterator[None]:
    """Every log line of the process, through the real processor chain, into `path`.

    Our JSON handler is left the root's only one, as in a service, so our own lines take
    the way a service's do: rendered and handed to the handler without a stdlib record
    (services/common/logging/own_lines.py). pytest's capture handlers would otherwise
    send every line the record's way.
    """
    # DEBUG on purpose: the most a misconfigured production process would write.
    configure_logging("intake", level="DEBUG", fmt="json", log_file=path, force=True)
    root = logging.getLogger()
    others = root.handlers
    root.handlers = list(log_setup._state.handlers)
    assert own_lines._route.handler is root.handlers[0], "not the service's way"
    try:
        yield
    finally:
        root.handlers = others
        # As the foundation's own logging tests do: back to the plain setup, file closed.
        configure_logging("aviso-tests", force=True)


async def test_canaries_never_leave_the_contact_view(
    intake_settings: Callable[..., IntakeSettings], tmp_path: Path
) -> None:
    canary = Canaries()
    settings = intake_settings()
    # Issued before logging starts: the token store is not intake's, and at DEBUG the
    # SQLite driver logs statement parameters (a foundation matter, reported).
    token = await issue_test_token(
        settings, Role.FIELD_OFFICE, name=canary("recordedby"), subject=canary("fieldofficeid")
    )
    log_file = tmp_path / "intake.log"
    with logging_to(log_file):
        await _exercise(settings, canary, token, log_file)


async def _exercise(settings: IntakeSettings, canary: Canaries, token: str, log_file: Path) -> None:
    async with run_intake(settings) as intake:
        intake.tokens["canary_office"] = token
        client = intake.client
        office = intake.auth("canary_office")
        ops_texts: list[str] = []

        first = _body(canary, "v1")
        created = await client.post("/v1/notices", json=first, headers=office)
        assert created.status_code == 201, created.text
        notice_id = created.json()["id"]
        office_texts = [created.text]

        # Rejected variants carrying the canaries: problems must not echo them.
        rejected = [
            await client.post(
                "/v1/notices", json={**first, "extra": canary("extra")}, headers=office
            ),
            await client.post("/v1/notices", json={**first, "summary": "other"}, headers=office),
            await client.post(
                "/v1/notices",
                json={**_body(canary, "bad"), "window_end": first["window_start"]},
                headers=office,
            ),
            await client.post(
                "/v1/notices", json={**first, "window_start": canary("badtime")}, headers=office
            ),
        ]
        assert [r.status_code for r in rejected] == [422, 409, 422, 422]
        office_texts += [r.text for r in rejected]

        second = revision_body(_body(canary, "v2"))
        updated = await client.post(f"/v1/notices/{notice_id}/update", json=second, headers=office)
        assert updated.status_code == 200
        office_texts.append(updated.text)

        contact = await client.get(f"/v1/notices/{notice_id}", headers=intake.auth("contact"))
        assert contact.status_code == 200
        assert canary.values["namev2"] in contact.text  # the contact does see them
        assert canary.values["fieldofficeid"] in contact.text

        for path in (f"/v1/notices/{notice_id}", "/v1/notices"):
            response = await client.get(path, headers=intake.auth("ops"))
            assert response.status_code == 200
            ops_texts.append(response.text)
            office_texts.append((await client.get(path, headers=office)).text)

        cancelled = await client.post(
            f"/v1/notices/{notice_id}/cancel",
            json={"reason": "operation_cancelled"},
            headers=office,
        )
        assert cancelled.status_code == 200
        office_texts.append(cancelled.text)

        # Everything the notice caused is on the topic before we look at the broker.
        records = await read_topic(
            settings.kafka_bootstrap_servers,
            NOTICES,
            until=lambda rs: len(rs) >= 3,
            key_filter=lambda key: key == notice_id.encode(),
        )
        assert len(records) == 3
        dump = await intake.dump()

    assert canary.values, "no canaries were planted"
    leaks: dict[str, list[str]] = {}
    for text in ops_texts:
        leaks.setdefault("ops responses", []).extend(canary.found_in(text))
    for text in office_texts:
        leaks.setdefault("field office responses", []).extend(canary.found_in(text))
    assert "notice_versions" in dump
    leaks["database"] = canary.found_in(dump)
    log_text = log_file.read_text(encoding="utf-8")  # noqa: ASYNC240 - a small local file
    assert "notice.received" in log_text
    assert "notice.restricted_read" in log_text
    leaks["logs"] = canary.found_in(log_text)
    messages = await _every_message(settings.kafka_bootstrap_servers)
    assert any(notice_id.encode() in blob for blob in messages)
    leaks["kafka"] = sorted(
        {field for blob in messages for field in canary.found_in(blob.decode("utf-8", "replace"))}
    )
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}


async def test_ops_cannot_reach_restricted_detail_by_any_parameter(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    """Query strings and headers cannot widen what `ops` sees."""
    canary = Canaries()
    async with run_intake(intake_settings()) as intake:
        created = await intake.created(_body(canary, "v1"))
        tries: list[httpx.Response] = [
            await intake.client.get(
                f"/v1/notices/{created['id']}",
                params={"include": "restricted", "view": "full", "fields": "restricted"},
                headers=intake.auth("ops", Accept="application/json"),
            ),
            await intake.client.get(
                "/v1/notices", params={"expand": "restricted"}, headers=intake.auth("ops")
            ),
        ]
        for response in tries:
            assert response.status_code == 200
            assert not canary.found_in(response.text)
