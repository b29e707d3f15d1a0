"""Rumor control end to end in one process: real Kafka, real PostgreSQL, real sinks.

Notices and acknowledgements are fed as the CloudEvents intake and router would publish;
everything rumor_control does is observed from outside: its HTTP API, the public feeds,
the Kafka topics, the webhook and SMTP sinks and its JSON log file.
"""

from __future__ import annotations

import asyncio
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from schemas.notices import NoticeUpdated
from schemas.topics import BULLETINS, RUMORS
from services.rumor_control.config import PACKAGE_DIR
from tests.integration.rumor_control.rumor_harness import (
    RumorApp,
    kafka_text,
    payloads,
    rumor_app_running,
)
from tests.support import infra
from tests.support.kafka_io import read_topic, wait_for

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
            tmp_path_factory.mktemp("rumor"), database_url=database, kafka_bootstrap=kafka_bootstrap
        ) as running:
            yield running
    finally:
        await infra.drop_database_async(database)


def _base_time(days_ago: int) -> datetime:
    """A distinct moment per test, so rumors of different tests never cluster together."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(days=days_ago)


async def _standby_for(rc: RumorApp, notice_id: uuid.UUID) -> dict[str, Any]:
    summary = await rc.wait_for_bulletin(
        lambda b: b["kind"] == "standby" and str(notice_id) in b["notice_ids"]
    )
    return await rc.bulletin(summary["bulletin_id"])


async def _assessed_draft(
    rc: RumorApp, *, place: str, days_ago: int, assessment: str = "False", **extra: Any
) -> tuple[str, str]:
    """A rumor reported and assessed by vetter A: returns (rumor_id, bulletin_id)."""
    observed = _base_time(days_ago).isoformat()
    report = await rc.report(
        claim="Dicen que la migra está en la tienda", place=place, channel="phone_line",
        observed_at=observed, **extra,
    )  # fmt: skip
    body: dict[str, Any] = {"assessment": assessment}
    response = await rc.client.post(
        f"/v1/rumors/{report['rumor_id']}/assess", json=body, headers=rc.auth("vetter_a")
    )
    assert response.status_code == 200, response.text
    return report["rumor_id"], response.json()["bulletin_id"]


# -- notice acknowledged -> standby ------------------------------------------------------------


async def test_acknowledged_notice_gets_a_standby_draft_in_both_languages(rc: RumorApp) -> None:
    notice = rc.notice(area_code="riverside")
    await rc.produce(notice, source="aviso.intake")
    await rc.produce(rc.acknowledgement(notice), source="aviso.router")

    draft = await _standby_for(rc, notice.notice_id)

    assert draft["state"] == "drafted"
    assert draft["status"] == "Actual"
    english, spanish = draft["texts"]["en"], draft["texts"]["es"]
    assert "Riverside" in english["headline"]
    assert "La Ribera" in spanish["headline"]
    assert "do not enforce federal immigration law" in english["body"]
    assert "no hacen cumplir las leyes federales de inmigración" in spanish["body"]
    assert "(505) 555-0142" in english["body"]
    assert "(505) 555-0142" in spanish["body"]
    assert "Casa Hispana Community Center" in english["body"]
    assert "Centro Comunitario Casa Hispana" in spanish["body"]
    assert "cinco cero cinco" in spanish["radio"]
    assert draft["guardrails"] == [], draft["guardrails"]


async def test_acknowledgement_before_its_notice_still_drafts_the_standby(rc: RumorApp) -> None:
    notice = rc.notice(area_code="lakeview")
    await rc.produce(rc.acknowledgement(notice), source="aviso.router")
    # The notice goes out only once the acknowledgement waits for it (different topics: no
    # order between them otherwise), so this really is the acknowledgement-first case.
    await rc.wait_for_standby_request(notice.notice_id)
    await rc.produce(notice, source="aviso.intake")

    draft = await _standby_for(rc, notice.notice_id)
    assert "Vista del Lago" in draft["texts"]["es"]["body"]


async def test_a_notice_update_redrafts_its_untouched_standby(rc: RumorApp) -> None:
    notice = rc.notice(area_code="northgate")
    await rc.produce(notice, source="aviso.intake")
    await rc.produce(rc.acknowledgement(notice), source="aviso.router")
    draft = await _standby_for(rc, notice.notice_id)
    assert "Northgate" in draft["texts"]["en"]["body"]

    moved = NoticeUpdated(
        **{
            **notice.model_dump(exclude={"msg_type", "version", "references"}),
            "area_code": "los-alamos",
            "area": "Los Alamos",
        },
        msg_type="Update",
        version=2,
        references=(f"{notice.notice_id}:1",),
    )
    await rc.produce(moved, source="aviso.intake")

    async def redrafted() -> bool:
        body = (await rc.bulletin(draft["bulletin_id"]))["texts"]["en"]["body"]
        return "Los Álamos" in body

    await wait_for(redrafted, timeout=45, interval=0.3)


async def test_a_notice_update_rechecks_the_drafts_citing_it_and_only_those(
    rc: RumorApp,
) -> None:
    """A later version marks a word restricted that a vetter had written into a draft: the
    drafts citing that notice are blocked at once; a draft citing another notice is not."""
    canary = f"Quorlent{uuid.uuid4().hex[:8]}"
    cited, other = rc.notice(area_code="riverside"), rc.notice(area_code="lakeview")
    drafts: dict[str, str] = {}
    for notice in (cited, other):
        await rc.produce(notice, source="aviso.intake")
        await rc.produce(rc.acknowledgement(notice), source="aviso.router")
        draft = await _standby_for(rc, notice.notice_id)
        drafts[str(notice.notice_id)] = draft["bulletin_id"]
        edited = await rc.client.put(
            f"/v1/bulletins/{draft['bulletin_id']}/texts/en",
            json={"body": draft["texts"]["en"]["body"] + f"\n\nNear the {canary} yard."},
            headers=rc.auth("vetter_b"),
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["blocked_reasons"] == []

    marked = rc.notice(area_code="riverside", restricted_terms=(canary,))
    with_term = NoticeUpdated(
        **{
            **cited.model_dump(exclude={"msg_type", "version", "references"}),
            "restricted_fingerprints": marked.restricted_fingerprints,
        },
        msg_type="Update",
        version=2,
        references=(f"{cited.notice_id}:1",),
    )
    await rc.produce(with_term, source="aviso.intake")

    async def blocked() -> bool:
        bulletin = await rc.bulletin(drafts[str(cited.notice_id)])
        return "leak.restricted_term" in bulletin["blocked_reasons"]

    await wait_for(blocked, timeout=45, interval=0.3)
    untouched = await rc.bulletin(drafts[str(other.notice_id)])
    assert untouched["blocked_reasons"] == []


# -- clustering --------------------------------------------------------------------------------


async def test_reports_of_the_same_place_and_time_cluster_into_one_rumor(rc: RumorApp) -> None:
    base = _base_time(3)
    first = await rc.report(
        claim="Vieron a la migra cerca del mercado", place="la ribera", channel="phone_line",
        observed_at=base.isoformat(), language="es",
    )  # fmt: skip
    second = await rc.report(
        claim="ICE vans parked by the river", place="RIVERSIDE", channel="social_media",
        observed_at=(base + timedelta(minutes=40)).isoformat(), language="en",
    )  # fmt: skip
    third = await rc.report(
        claim="Dicen que hay agentes en la ribera", place="Ribera del Río", channel="radio",
        observed_at=(base + timedelta(minutes=95)).isoformat(), language="es",
    )  # fmt: skip
    elsewhere = await rc.report(
        claim="Agents at the laundromat", place="las palmas", channel="community_leader",
        observed_at=(base + timedelta(minutes=30)).isoformat(),
    )  # fmt: skip
    much_later = await rc.report(
        claim="Otra vez la migra", place="La Ribera", channel="phone_line",
        observed_at=(base + timedelta(hours=12)).isoformat(),
    )  # fmt: skip
    drill = await rc.report(
        claim="Drill report", place="Riverside", channel="walk_in",
        observed_at=(base + timedelta(minutes=20)).isoformat(), drill=True,
    )  # fmt: skip

    assert first["new_rumor"]
    assert first["area_code"] == "riverside"
    assert second["rumor_id"] == third["rumor_id"] == first["rumor_id"]
    assert third["report_count"] == 3
    assert not third["new_rumor"]
    assert elsewhere["rumor_id"] != first["rumor_id"]
    assert elsewhere["area_code"] == "las-palmas"
    assert much_later["rumor_id"] != first["rumor_id"], "outside the window: a new rumor"
    assert drill["rumor_id"] != first["rumor_id"]
    assert drill["status"] == "Exercise"

    response = await rc.client.get(f"/v1/rumors/{first['rumor_id']}", headers=rc.auth("vetter_a"))
    rumor = response.json()
    assert rumor["report_count"] == 3
    assert rumor["channels"] == ["phone_line", "radio", "social_media"]
    assert {r["claim"] for r in rumor["reports"]} >= {"ICE vans parked by the river"}
    assert rumor["assessment"] is None, "nothing is assessed automatically"
    as_ops = await rc.client.get(f"/v1/rumors/{first['rumor_id']}", headers=rc.auth("ops"))
    assert as_ops.json()["reports"] is None, "ops never reads the claims"

    # Events carry the gazetteer area, never the claim or the place as heard.
    records = await read_topic(
        rc.settings.kafka_bootstrap_servers, RUMORS,
        until=lambda rs: len(rs) >= 3, key_filter=lambda k: k == first["rumor_id"].encode(),
    )  # fmt: skip
    events = payloads(records)
    assert [e["report_count"] for e in events] == [1, 2, 3]
    assert {e["area"] for e in events} == {"Riverside"}
    assert "ICE vans" not in kafka_text(records)
    assert "Ribera del Río" not in kafka_text(records)


# -- guardrails: leak and parity ---------------------------------------------------------------


async def test_an_edit_with_a_restricted_term_is_blocked_and_the_term_never_leaves(
    rc: RumorApp,
) -> None:
    canary = f"Zorvath{uuid.uuid4().hex[:8]}"
    start = _base_time(4)
    notice = rc.notice(area_code="las-palmas", restricted_terms=(canary, "ABC-1234"), start=start)
    await rc.produce(notice, source="aviso.intake")
    report = await rc.report(
        claim="La migra anda por Las Palmas", place="Las Palmas", channel="phone_line",
        observed_at=(start + timedelta(minutes=30)).isoformat(),
    )  # fmt: skip
    rumor_id = report["rumor_id"]

    async def suggested() -> bool:
        response = await rc.client.get(f"/v1/rumors/{rumor_id}", headers=rc.auth("vetter_a"))
        return str(notice.notice_id) in response.json()["suggestion"]["notice_ids"]

    await wait_for(suggested, timeout=45, interval=0.3)
    rumor = (await rc.client.get(f"/v1/rumors/{rumor_id}", headers=rc.auth("vetter_a"))).json()
    assert rumor["suggestion"]["assessment"] == "Confirmed"
    assert rumor["assessment"] is None, "a suggestion is never applied by itself"

    assessed = await rc.client.post(
        f"/v1/rumors/{rumor_id}/assess",
        json={"assessment": "Confirmed", "linked_notice_ids": [str(notice.notice_id)]},
        headers=rc.auth("vetter_a"),
    )
    assert assessed.status_code == 200, assessed.text
    bulletin_id = assessed.json()["bulletin_id"]
    draft = await rc.bulletin(bulletin_id)
    assert draft["guardrails"] == []
    assert draft["status"] == "Actual"
    original = draft["texts"]["en"]["body"]

    leaked = original + f"\n\nAgents are looking for {canary.upper()}."
    edited = await rc.client.put(
        f"/v1/bulletins/{bulletin_id}/texts/en", json={"body": leaked}, headers=rc.auth("vetter_b")
    )
    assert edited.status_code == 200, edited.text
    findings = edited.json()["guardrails"]
    assert {"code": "leak.restricted_term", "language": "en", "section": "body"} in [
        {k: f[k] for k in ("code", "language", "section")} for f in findings
    ]
    assert "leak.restricted_term" in edited.json()["blocked_reasons"]

    refused = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_a"),
    )
    assert refused.status_code == 409
    assert refused.json()["reason_code"] == "vetting.blocked"

    restored = await rc.client.put(
        f"/v1/bulletins/{bulletin_id}/texts/en",
        json={"body": original},
        headers=rc.auth("vetter_a"),
    )
    assert restored.json()["guardrails"] == []
    approved = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )
    assert approved.status_code == 200, approved.text

    hooks = await rc.webhooks_for(bulletin_id, 2)
    mails = await asyncio.to_thread(
        rc.smtp.wait_for, lambda items: sum(bulletin_id in i["text"] for i in items) >= 1, 45
    )
    atom = (await rc.client.get("/feeds/bulletins.atom")).text
    cap = (await rc.client.get("/feeds/cap.xml")).text
    assert bulletin_id in atom
    assert bulletin_id in cap
    bulletin_events = await read_topic(
        rc.settings.kafka_bootstrap_servers, BULLETINS,
        until=lambda rs: len(rs) >= 5, key_filter=lambda k: k == bulletin_id.encode(),
    )  # fmt: skip
    # The delivery records hold ids and the bulletin's status, never the text.
    records = await rc.delivery_records(bulletin_id)
    assert len(records) >= 4
    rumor_events = await read_topic(
        rc.settings.kafka_bootstrap_servers, RUMORS,
        until=lambda rs: len(rs) >= 2, key_filter=lambda k: k == rumor_id.encode(),
    )  # fmt: skip
    assert [e["blocked_reasons"] for e in payloads(bulletin_events)[:3]] == [
        [],
        ["leak.restricted_term"],
        [],
    ]
    log_text = rc.log_file.read_text("utf-8")
    assert "bulletin.blocked" in log_text, "the log file is the one the service writes"
    everything = "\n".join(
        [
            str([h["payload"] for h in hooks]),
            str(mails),
            atom,
            cap,
            log_text,
            kafka_text(bulletin_events),
            str(records),
            kafka_text(rumor_events),
        ]
    ).lower()
    assert canary.lower() not in everything


async def test_a_spanish_version_with_a_different_time_is_blocked(rc: RumorApp) -> None:
    _, bulletin_id = await _assessed_draft(rc, place="Old Town", days_ago=5)
    draft = await rc.bulletin(bulletin_id)
    spanish = draft["texts"]["es"]["body"]
    later = re.sub(
        r"\b(\d{1,2}):(\d{2}) ([ap])\. m\.",
        lambda m: f"{int(m.group(1)) % 12 + 1}:{m.group(2)} {m.group(3)}. m.",
        spanish,
        count=1,
    )
    assert later != spanish

    edited = await rc.client.put(
        f"/v1/bulletins/{bulletin_id}/texts/es", json={"body": later}, headers=rc.auth("vetter_b")
    )
    assert edited.status_code == 200, edited.text
    parity = [f for f in edited.json()["guardrails"] if f["code"] == "parity.time"]
    assert parity
    assert parity[0]["section"] == "body", edited.json()["guardrails"]
    refused = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_a"),
    )
    assert refused.status_code == 409
    assert refused.json()["reason_code"] == "vetting.blocked"


# -- vetting -----------------------------------------------------------------------------------


async def test_the_author_cannot_approve_and_each_language_needs_a_signoff(rc: RumorApp) -> None:
    _, bulletin_id = await _assessed_draft(rc, place="East Market", days_ago=6)
    url = f"/v1/bulletins/{bulletin_id}"

    own = await rc.client.post(f"{url}/approve", json={}, headers=rc.auth("vetter_a"))
    assert own.status_code == 403
    assert own.json()["reason_code"] == "vetting.author_cannot_approve"
    own_signoff = await rc.client.post(
        f"{url}/signoff", json={"languages": ["en"]}, headers=rc.auth("vetter_a")
    )
    assert own_signoff.status_code == 403

    english = await rc.client.post(
        f"{url}/signoff", json={"languages": ["en"]}, headers=rc.auth("vetter_b")
    )
    assert english.status_code == 200
    missing = await rc.client.post(f"{url}/approve", json={}, headers=rc.auth("vetter_b"))
    assert missing.status_code == 409
    assert missing.json()["reason_code"] == "vetting.signoff_missing"
    assert "es" in missing.json()["detail"]

    await rc.client.post(f"{url}/signoff", json={"languages": ["es"]}, headers=rc.auth("vetter_b"))
    approved = await rc.client.post(f"{url}/approve", json={}, headers=rc.auth("vetter_b"))
    assert approved.status_code == 200
    assert approved.json()["state"] == "published"

    steps = (await rc.client.get(f"{url}/timeline", headers=rc.auth("ops"))).json()
    actions = [(s["action"], s["actor_name"]) for s in steps]
    assert actions[:5] == [
        ("drafted", "Vetter Ana"),
        ("signed_off", "Vetter Beto"),
        ("signed_off", "Vetter Beto"),
        ("approved", "Vetter Beto"),
        ("published", "Vetter Beto"),
    ]
    as_ops = await rc.bulletin(bulletin_id, who="ops")
    assert as_ops["texts"] is None, "ops reads metadata, not text"


# -- publishing, feeds, CAP, retraction --------------------------------------------------------


def _cap_alerts(feed: str) -> dict[str, ET.Element]:
    root = ET.fromstring(feed)
    alerts = {}
    for entry in root.iter(f"{ATOM}entry"):
        alert = entry.find(f"{ATOM}content/{CAP}alert")
        assert alert is not None
        alerts[alert.findtext(f"{CAP}identifier") or ""] = alert
    return alerts


def _validate(alert: ET.Element) -> None:
    CAP_SCHEMA.validate(ET.tostring(alert, encoding="unicode"))


async def test_an_approved_bulletin_reaches_liaisons_and_feeds_and_a_retraction_cancels_it(
    rc: RumorApp,
) -> None:
    _, bulletin_id = await _assessed_draft(
        rc, place="Northgate", days_ago=7, assessment="Not confirmed"
    )
    draft = await rc.bulletin(bulletin_id)
    approved = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )
    assert approved.status_code == 200, approved.text

    # Liaisons by webhook, each in its own language, signed, with a receipt link.
    hooks = await rc.webhooks_for(bulletin_id, 2)
    by_path = {h["path"]: h for h in hooks}
    spanish = by_path["/liaisons/casa-hispana"]
    english = by_path["/liaisons/northgate"]
    assert spanish["signature_valid"]
    assert english["signature_valid"]
    assert spanish["payload"]["language"] == "es"
    assert english["payload"]["language"] == "en"
    assert spanish["payload"]["headline"] == draft["texts"]["es"]["headline"]
    assert english["payload"]["headline"] == draft["texts"]["en"]["headline"]
    assert "No confirmado" in spanish["payload"]["body"]
    receipt_url = spanish["payload"]["receipt_url"]
    assert receipt_url.startswith("http://testserver/v1/receipts?token=")

    # E-mail: the English liaison in English, the radio desk a Spanish-first script.
    mails = await asyncio.to_thread(
        rc.smtp.wait_for,
        lambda items: (
            sum(bulletin_id in i["text"] or bulletin_id in i["subject"] for i in items) >= 1
            and any(
                i["to"] == ["redaccion@lamovida.example"] and bulletin_id in i["text"]
                for i in items
            )
            # Both e-mails: the engine sends them concurrently, in no particular order.
            and any(
                i["to"] == ["board@northgate-neighbors.example"]
                and draft["texts"]["en"]["headline"] in i["subject"]
                for i in items
            )
        ),
        45,
    )
    radio = next(
        m for m in mails if m["to"] == ["redaccion@lamovida.example"] and bulletin_id in m["text"]
    )
    script = radio["text"]
    spoken_es = script.split("[ESPAÑOL: leer al aire]")[1].split("[ENGLISH]")[0]
    assert script.index("[ESPAÑOL") < script.index("[ENGLISH]")
    assert not re.search(r"\d", spoken_es), "times and numbers are spelled out"
    assert re.search(r"de la (mañana|tarde|noche|madrugada)|mediodía|medianoche", spoken_es)
    assert radio["language"] == "es"
    english_mail = next(m for m in mails if m["to"] == ["board@northgate-neighbors.example"]
                        and draft["texts"]["en"]["headline"] in m["subject"])  # fmt: skip
    assert "Please confirm that you received this bulletin" in english_mail["text"]

    # The receipt link records who read which version.
    opened = await rc.client.get(receipt_url.removeprefix("http://testserver"))
    assert opened.status_code == 200
    assert "Gracias" in opened.text
    report = (
        await rc.client.get(f"/v1/bulletins/{bulletin_id}/deliveries", headers=rc.auth("ops"))
    ).json()
    assert [(r["recipient_id"], r["version"]) for r in report["receipts"]] == [
        (rc.spanish_liaison, 1)
    ]
    forged = await rc.client.get(receipt_url.removeprefix("http://testserver")[:-2] + "xx")
    assert forged.status_code == 403

    # Both public feeds, no token; CAP valid against the OASIS schema, one info per language.
    atom = await rc.client.get("/feeds/bulletins.atom")
    assert atom.status_code == 200
    assert atom.headers["content-type"].startswith("application/atom+xml")
    atom_ids = {e.findtext(f"{ATOM}id") for e in ET.fromstring(atom.text).iter(f"{ATOM}entry")}
    assert {
        f"urn:aviso:bulletin:{bulletin_id}:en",
        f"urn:aviso:bulletin:{bulletin_id}:es",
    } <= atom_ids
    alerts = _cap_alerts((await rc.client.get("/feeds/cap.xml")).text)
    first = alerts[f"urn:aviso:bulletin:{bulletin_id}:1"]
    _validate(first)
    assert first.findtext(f"{CAP}msgType") == "Alert"
    assert [i.findtext(f"{CAP}language") for i in first.iter(f"{CAP}info")] == ["en-US", "es-US"]
    document = await rc.client.get(f"/feeds/cap/{bulletin_id}/1.xml")
    assert document.headers["content-type"].startswith("application/cap+xml")
    CAP_SCHEMA.validate(document.text)

    # Retraction: a CAP Cancel that references the original, and a correction to liaisons.
    retracted = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/retract",
        json={"reason_code": "facts_changed"},
        headers=rc.auth("vetter_a"),
    )
    assert retracted.status_code == 200
    assert retracted.json()["state"] == "retracted"
    alerts = _cap_alerts((await rc.client.get("/feeds/cap.xml")).text)
    cancel = alerts[f"urn:aviso:bulletin:{bulletin_id}:2"]
    _validate(cancel)
    assert cancel.findtext(f"{CAP}msgType") == "Cancel"
    sender, identifier, sent = (cancel.findtext(f"{CAP}references") or "").split(",")
    assert identifier == f"urn:aviso:bulletin:{bulletin_id}:1"
    assert sender == first.findtext(f"{CAP}sender")
    assert sent == first.findtext(f"{CAP}sent")
    CAP_SCHEMA.validate((await rc.client.get(f"/feeds/cap/{bulletin_id}/2.xml")).text)
    corrections = await rc.webhooks_for(bulletin_id, 4)
    assert {h["payload"]["purpose"] for h in corrections if h["payload"]["version"] == 2} == {
        "retraction"
    }
    events = payloads(
        await read_topic(
            rc.settings.kafka_bootstrap_servers,
            BULLETINS,
            until=lambda rs: any(
                r.headers and dict(r.headers)["ce_type"] == b"bulletin.retracted" for r in rs
            ),
            key_filter=lambda k: k == bulletin_id.encode(),
        )
    )
    assert events[-1]["references"] == [f"{bulletin_id}:1"]
    assert events[-1]["msg_type"] == "Cancel"


async def test_drill_bulletins_stay_inside_the_department(rc: RumorApp) -> None:
    notice = rc.notice(area_code="industrial-park", status="Exercise")
    await rc.produce(notice, source="aviso.intake")
    await rc.produce(rc.acknowledgement(notice), source="aviso.router")
    draft = await _standby_for(rc, notice.notice_id)
    bulletin_id = draft["bulletin_id"]

    assert draft["drill"]
    assert draft["status"] == "Exercise"
    assert draft["guardrails"] == []
    assert draft["texts"]["en"]["headline"].startswith("DRILL")
    assert draft["texts"]["es"]["headline"].startswith("SIMULACRO (DRILL)")
    assert draft["texts"]["en"]["sms"].startswith("DRILL")
    approved = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )
    assert approved.status_code == 200, approved.text

    # Only the drill audience (the outreach unit) receives it: no liaison, no radio desk.
    records = await rc.delivery_records(bulletin_id)
    assert {r["recipient_id"] for r in records} == {rc.outreach_unit}
    hooks = await rc.webhooks_for(bulletin_id, 1)
    assert [h["path"] for h in hooks] == ["/outreach"]
    assert all(h["payload"]["drill"] and "DRILL" in h["payload"]["headline"] for h in hooks)
    # Liaisons neither list nor read it.
    assert bulletin_id not in {b["bulletin_id"] for b in await rc.bulletins("liaison")}
    hidden = await rc.client.get(f"/v1/bulletins/{bulletin_id}", headers=rc.auth("liaison"))
    assert hidden.status_code == 404
    assert bulletin_id not in (await rc.client.get("/feeds/bulletins.atom")).text
    assert bulletin_id not in (await rc.client.get("/feeds/cap.xml")).text
    assert (await rc.client.get(f"/feeds/cap/{bulletin_id}/1.xml")).status_code == 404
    published = [
        e
        for e in payloads(
            await read_topic(
                rc.settings.kafka_bootstrap_servers,
                BULLETINS,
                until=lambda rs: len(rs) >= 3,
                key_filter=lambda k: k == bulletin_id.encode(),
            )
        )
        if "texts" in e
    ]
    assert published
    assert published[0]["status"] == "Exercise"
    assert published[0]["channels"] == ["drill_audience"]


async def test_a_rejected_draft_is_final_and_its_reasons_are_codes(rc: RumorApp) -> None:
    _, bulletin_id = await _assessed_draft(rc, place="Los Álamos", days_ago=8)
    rejected = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/reject",
        json={"reason_codes": ["vetter.wording", "vetter.facts"], "comment": "Say it plainer."},
        headers=rc.auth("vetter_b"),
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state"] == "rejected"
    again = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve", json={}, headers=rc.auth("vetter_b")
    )
    assert again.status_code == 409
    assert again.json()["reason_code"] == "vetting.not_a_draft"
    records = await read_topic(
        rc.settings.kafka_bootstrap_servers,
        BULLETINS,
        until=lambda rs: len(rs) >= 2,
        key_filter=lambda k: k == bulletin_id.encode(),
    )
    event = payloads(records)[-1]
    assert event["reason_codes"] == ["vetter.facts", "vetter.wording"]
    assert "plainer" not in kafka_text(records), "the vetter's comment stays in rumor_control"


async def test_editing_a_published_bulletin_publishes_a_cap_update(rc: RumorApp) -> None:
    notice = rc.notice(area_code="old-town")
    await rc.produce(notice, source="aviso.intake")
    await rc.produce(rc.acknowledgement(notice), source="aviso.router")
    bulletin_id = (await _standby_for(rc, notice.notice_id))["bulletin_id"]
    url = f"/v1/bulletins/{bulletin_id}"
    first = await rc.client.post(
        f"{url}/approve", json={"sign_off": ["en", "es"]}, headers=rc.auth("vetter_a")
    )
    assert first.status_code == 200, first.text

    published = first.json()["texts"]
    headline = {"en": "Update: " + published["en"]["headline"], "es": "Actualización: "}
    headline["es"] += published["es"]["headline"]
    for language in ("en", "es"):
        edited = await rc.client.put(
            f"{url}/texts/{language}",
            json={"headline": headline[language]},
            headers=rc.auth("vetter_a"),
        )
        assert edited.status_code == 200, edited.text
    draft = edited.json()
    assert draft["version"] == 2
    assert draft["msg_type"] == "Update"
    assert draft["state"] == "published", "the public still sees version 1"
    assert draft["version_state"] == "drafted"
    second = await rc.client.post(
        f"{url}/approve", json={"sign_off": ["en", "es"]}, headers=rc.auth("vetter_b")
    )
    assert second.status_code == 200, second.text

    update = _cap_alerts((await rc.client.get("/feeds/cap.xml")).text)[
        f"urn:aviso:bulletin:{bulletin_id}:2"
    ]
    _validate(update)
    assert update.findtext(f"{CAP}msgType") == "Update"
    assert f"urn:aviso:bulletin:{bulletin_id}:1," in (update.findtext(f"{CAP}references") or "")
    hooks = await rc.webhooks_for(bulletin_id, 4)
    assert {h["payload"]["purpose"] for h in hooks if h["payload"]["version"] == 2} == {"update"}


async def test_metrics_count_reports_blocks_deliveries_and_receipts(rc: RumorApp) -> None:
    metrics = (await rc.client.get("/metrics")).text
    for name in (
        "aviso_rumor_reports_total",
        "aviso_bulletin_guardrail_blocks_total",
        "aviso_bulletin_deliveries_total",
        "aviso_bulletin_receipts_total",
        "aviso_rumor_report_to_bulletin_seconds",
    ):
        assert name in metrics
    assert 'aviso_bulletin_guardrail_blocks_total{reason="leak.restricted_term"}' in metrics
    # The sink refused the first webhook: it was retried, not lost.
    assert 'aviso_bulletin_deliveries_total{channel="webhook",outcome="retry"}' in metrics


async def test_roles_are_enforced(rc: RumorApp, tmp_path: Path) -> None:
    report = {"claim": "x", "place": "Riverside", "channel": "walk_in"}
    assert (await rc.client.post("/v1/rumors", json=report)).status_code == 401
    as_ops = await rc.client.post("/v1/rumors", json=report, headers=rc.auth("ops"))
    assert as_ops.status_code == 403
    listing = await rc.client.get("/v1/rumors", headers=rc.auth("liaison"))
    assert listing.status_code == 403
    for summary in await rc.bulletins("liaison"):
        assert summary["state"] in ("published", "retracted")
