"""Bulletins never contradict each other (issue 13), through the public API on real Kafka and
PostgreSQL: a rumor walks Unable to verify -> Confirmed -> Retracted and, at each step, the
feeds hold one message of its chain, valid against the OASIS CAP 1.2 XSD; a cancelled
notice withdraws its standby draft and flags the bulletin that confirmed it."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import xmlschema

from schemas.notices import NoticeCancelled
from services.rumor_control.config import PACKAGE_DIR
from tests.integration.rumor_control.rumor_harness import RumorApp, rumor_app_running
from tests.support import infra
from tests.support.kafka_io import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ATOM = "{http://www.w3.org/2005/Atom}"
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
CAP_SCHEMA = xmlschema.XMLSchema(str(PACKAGE_DIR / "cap" / "CAP-v1.2.xsd"))


@pytest.fixture(scope="module")
async def rc(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[RumorApp]:
    database = await infra.fresh_database_async(postgres_url)
    try:
        async with rumor_app_running(
            tmp_path_factory.mktemp("lifecycle"), database_url=database,
            kafka_bootstrap=kafka_bootstrap,
        ) as running:  # fmt: skip
            yield running
    finally:
        await infra.drop_database_async(database)


def _identifier(bulletin_id: str, version: int) -> str:
    return f"urn:aviso:bulletin:{bulletin_id}:{version}"


async def _cap_feed(rc: RumorApp) -> dict[str, ET.Element]:
    """Every CAP message in /feeds/cap.xml by identifier, each checked against the XSD."""
    response = await rc.client.get("/feeds/cap.xml")
    assert response.status_code == 200
    alerts = {}
    for entry in ET.fromstring(response.text).iter(f"{ATOM}entry"):
        alert = entry.find(f"{ATOM}content/{CAP}alert")
        assert alert is not None
        CAP_SCHEMA.validate(ET.tostring(alert, encoding="unicode"))
        alerts[alert.findtext(f"{CAP}identifier") or ""] = alert
    return alerts


async def _standalone(rc: RumorApp, bulletin_id: str, version: int) -> ET.Element:
    response = await rc.client.get(f"/feeds/cap/{bulletin_id}/{version}.xml")
    assert response.status_code == 200, response.text
    CAP_SCHEMA.validate(response.text)
    return ET.fromstring(response.text)


def _referenced(alert: ET.Element) -> list[str]:
    """The identifiers an alert's `references` name (sender,identifier,sent triples)."""
    return [triple.split(",")[1] for triple in (alert.findtext(f"{CAP}references") or "").split()]


def _atom_entries(text: str) -> dict[str, str]:
    """Atom entry id -> its CAP link, of /feeds/bulletins.atom."""
    entries = {}
    for entry in ET.fromstring(text).iter(f"{ATOM}entry"):
        link = entry.find(f"{ATOM}link[@type='application/cap+xml']")
        entries[entry.findtext(f"{ATOM}id") or ""] = "" if link is None else link.get("href", "")
    return entries


async def _liaison_list(rc: RumorApp) -> set[str]:
    return {b["bulletin_id"] for b in await rc.bulletins("liaison")}


async def _assess(rc: RumorApp, rumor_id: str, assessment: str, *linked: uuid.UUID) -> str:
    response = await rc.client.post(
        f"/v1/rumors/{rumor_id}/assess",
        json={"assessment": assessment, "linked_notice_ids": [str(i) for i in linked]},
        headers=rc.auth("vetter_a"),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["bulletin_id"])


async def _approve(rc: RumorApp, bulletin_id: str) -> dict[str, Any]:
    response = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve", json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _acknowledged_notice(rc: RumorApp, area_code: str, start: datetime) -> Any:
    """A notice and its acknowledgement; returns once its standby is drafted (projected)."""
    notice = rc.notice(area_code=area_code, start=start)
    await rc.produce(notice, source="aviso.intake")
    await rc.produce(rc.acknowledgement(notice), source="aviso.router")
    await rc.wait_for_bulletin(
        lambda b: b["kind"] == "standby" and str(notice.notice_id) in b["notice_ids"]
    )
    return notice


async def test_unable_to_verify_then_confirmed_then_retracted_keeps_one_chain(
    rc: RumorApp,
) -> None:
    # The operation is announced for tomorrow; the rumor is heard today (claim without time).
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    notice = await _acknowledged_notice(rc, "riverside", start)
    rumor = await rc.report(
        claim="Dicen que mañana habrá redadas en La Ribera", place="Riverside",
        channel="phone_line",
    )  # fmt: skip
    listed = await rc.client.get(f"/v1/rumors/{rumor['rumor_id']}", headers=rc.auth("vetter_a"))
    assert listed.json()["suggestion"]["assessment"] == "Confirmed"  # it anticipates the window
    assert listed.json()["suggestion"]["notice_ids"] == [str(notice.notice_id)]

    # 1. Unable to verify: a new chain, CAP Alert.
    first = await _assess(rc, rumor["rumor_id"], "Unable to verify")
    await _approve(rc, first)
    feed = await _cap_feed(rc)
    alert = feed[_identifier(first, 1)]
    assert alert.findtext(f"{CAP}msgType") == "Alert"
    assert alert.find(f"{CAP}references") is None

    # 2. Confirmed: the new bulletin is the chain's Update and the first is superseded.
    second = await _assess(rc, rumor["rumor_id"], "Confirmed", notice.notice_id)
    approved = await _approve(rc, second)
    assert approved["msg_type"] == "Update"
    before = await rc.bulletin(first)
    assert (before["state"], before["superseded_by"]) == ("superseded", second)
    feed = await _cap_feed(rc)
    assert _identifier(first, 1) not in feed  # the Update stands for it
    update = feed[_identifier(second, 1)]
    assert update.findtext(f"{CAP}msgType") == "Update"
    assert _referenced(update) == [_identifier(first, 1)]
    expires = update.findtext(f"{CAP}info/{CAP}expires")
    assert expires is not None
    assert datetime.fromisoformat(expires) >= notice.window_end  # never before the window ends
    assert (await _standalone(rc, first, 1)).findtext(f"{CAP}msgType") == "Alert"
    atom = _atom_entries((await rc.client.get("/feeds/bulletins.atom")).text)
    assert atom[f"urn:aviso:bulletin:{first}:es"].endswith(f"/feeds/cap/{second}/1.xml")
    assert {first, second} & await _liaison_list(rc) == {second}
    gone = await rc.client.get(f"/v1/bulletins/{first}", headers=rc.auth("liaison"))
    assert gone.status_code == 404
    # Liaisons and the radio desk are told it is an update.
    hooks = await rc.webhooks_for(second, 2)
    assert {h["payload"]["purpose"] for h in hooks} == {"update"}
    spanish = next(h for h in hooks if h["path"] == "/liaisons/casa-hispana")
    assert spanish["payload"]["headline"].startswith("Actualización")
    records = await rc.delivery_records(second)
    assert {r["purpose"] for r in records} == {"update"}

    # 3. Retracted: the Cancel keeps the chain, referencing both earlier messages.
    retracted = await rc.client.post(
        f"/v1/bulletins/{second}/retract", json={"reason_code": "vetting.error"},
        headers=rc.auth("vetter_b"),
    )  # fmt: skip
    assert retracted.status_code == 200, retracted.text
    feed = await _cap_feed(rc)
    cancel = feed[_identifier(second, 2)]
    assert cancel.findtext(f"{CAP}msgType") == "Cancel"
    assert _referenced(cancel) == [_identifier(first, 1), _identifier(second, 1)]
    assert not {_identifier(first, 1), _identifier(second, 1)} & set(feed)
    assert {first, second}.isdisjoint(await _liaison_list(rc))


async def test_a_cancelled_notice_withdraws_its_standby_and_flags_its_bulletins(
    rc: RumorApp,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    notice = await _acknowledged_notice(rc, "lakeview", start)
    standby = next(
        b["bulletin_id"] for b in await rc.bulletins() if str(notice.notice_id) in b["notice_ids"]
    )
    rumor = await rc.report(claim="ICE at the lake", place="Lakeview", channel="phone_line")
    confirmed = await _assess(rc, rumor["rumor_id"], "Confirmed", notice.notice_id)
    await _approve(rc, confirmed)

    now = datetime.now(UTC)
    await rc.produce(
        NoticeCancelled(
            notice_id=notice.notice_id, version=2, references=(f"{notice.notice_id}:1",),
            status="Actual", sent_at=now, received_at=now, reason="operation_cancelled",
        ),
        source="aviso.intake",
    )  # fmt: skip

    async def withdrawn() -> bool:
        return (await rc.bulletin(standby))["state"] == "withdrawn"

    await wait_for(withdrawn, timeout=45, interval=0.3)
    refused = await rc.client.post(
        f"/v1/bulletins/{standby}/approve", json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )  # fmt: skip
    assert refused.status_code == 409
    assert refused.json()["reason_code"] == "vetting.withdrawn"
    flagged = await rc.bulletin(confirmed)
    assert flagged["flags"] == ["notice.cancelled"]
    assert flagged["state"] == "published"
    assert (flagged["version"], flagged["version_state"], flagged["msg_type"]) == (
        2, "drafted", "Update",
    )  # fmt: skip
    assert "called off" in flagged["texts"]["en"]["body"]
    assert flagged["guardrails"] == []
