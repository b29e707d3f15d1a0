"""The whole story across real processes, real Kafka and real PostgreSQL, through HTTP only.

A field office submits a notice for tomorrow in District 4; the SPOC's alert reaches the
webhook and SMTP sinks and is acknowledged through its one-click link; rumor_control
drafts a standby bulletin in both languages; three rumor reports (two in Spanish)
cluster into one rumor; its assessment drafts a Rumor/Fact bulletin, which its author
may not approve and a second vetter approves with both languages signed off; the
liaisons receive it in their languages, the radio desk's script reads Spanish first,
and the public CAP and Atom feeds carry it. The correlation id sent with the notice is
followed through the JSON logs of all three services, and both timelines are read back.

The timings printed are observations on this machine, not assertions.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from services.rumor_control.config import PACKAGE_DIR
from tests.e2e.e2e_support import (
    CORRELATION_HEADER,
    Hops,
    System,
    acknowledge_by_link,
    approve,
    assess_rumor,
    deliveries_by_target,
    records_with,
    report_rumors,
    running_system,
    spoc_alert,
    standby_bulletin,
    submit_notice,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

ATOM = "{http://www.w3.org/2005/Atom}"
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
CAP_SCHEMA = xmlschema.XMLSchema(str(PACKAGE_DIR / "cap" / "CAP-v1.2.xsd"))
# Restricted detail of the demo notice: it may be read at intake, never sent anywhere.
RESTRICTED = ("Esteban Quiroga", "2231 Alameda", "7XYZ123", "19th and Alameda", "Dana Whitlock")


def _assert_no_restricted(*texts: str) -> None:
    joined = "\n".join(texts)
    for term in RESTRICTED:
        assert term not in joined, f"restricted detail {term!r} left intake"


async def test_the_whole_story_through_http_across_three_processes(
    pg_database: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    async with running_system(
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        database_url=pg_database,
        unique=unique,
        spoc_wait_s=45,
    ) as system:
        await _play_and_check(system, unique("e2e-story"))


async def _play_and_check(system: System, correlation_id: str) -> None:
    cast, http = system.cast, system.client
    hops = Hops("e2e story")

    # 1. The field office's notice: 201, version 1, the correlation id echoed back.
    body, response = await submit_notice(system, correlation_id=correlation_id)
    assert response.status_code == 201, response.text
    assert response.headers[CORRELATION_HEADER] == correlation_id
    notice = response.json()
    notice_id = notice["id"]
    assert notice["version"] == 1
    assert notice["reference"] == body["reference"]
    hops.mark("notice POST -> 201")

    # 2. The SPOC's alert, by webhook (signed) and by e-mail, releasable fields only.
    hook, mail = await spoc_alert(system, notice_id)
    hops.mark("201 -> SPOC alert at webhook + SMTP sinks")
    alert = hook["payload"]
    alert_id = alert["alert_id"]
    assert hook["path"] == f"/hooks/{cast.spoc_id}"
    assert hook["signature_valid"] is True
    assert hook["delivery_id"] == alert["delivery_id"]
    assert alert["purpose"] == "alert"
    assert alert["recipient_id"] == cast.spoc_id
    assert alert["notice_version"] == 1
    assert alert["drill"] is False
    assert "District 4" in alert["headline"]
    assert alert["correlation_id"] == correlation_id
    assert alert["ack_url"].startswith(f"{system.router_url}/ack?token=")
    assert alert["notice_url"] == f"{system.intake.url}/v1/notices/{notice_id}"
    assert mail["to"] == [cast.spoc_email]
    assert alert_id in mail["text"]
    assert "District 4" in mail["subject"]
    assert mail["delivery_id"]
    assert mail["delivery_id"] != hook["delivery_id"]
    _assert_no_restricted(json.dumps(hook["payload"]), mail["subject"], mail["text"])

    # The restricted detail is read at intake, with the SPOC's own token.
    detail = await http.get(alert["notice_url"], headers=system.auth("spoc"))
    assert detail.status_code == 200, detail.text
    assert "Esteban Quiroga" in detail.text
    as_ops = await http.get(alert["notice_url"], headers=system.auth("ops"))
    assert as_ops.status_code == 200
    assert "Esteban Quiroga" not in as_ops.text, "ops reads metadata only"
    hops.mark("SPOC reads the restricted detail at intake")

    # 3. The one-click link: a confirmation page, then the acknowledgement.
    # The SPOC's phone sends no correlation id: the router mints one for the click.
    page, done = await acknowledge_by_link(system, alert["ack_url"])
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert done.status_code == 200, done.text
    acknowledged = done.json()
    assert acknowledged["alert_id"] == alert_id
    assert acknowledged["state"] == "acknowledged"
    assert acknowledged["method"] == "link"
    assert acknowledged["acknowledged_by"] == cast.spoc_id
    assert acknowledged["already_acknowledged"] is False
    ack_correlation_id = done.headers[CORRELATION_HEADER]
    assert ack_correlation_id != correlation_id
    hops.mark("one-click link: page + acknowledgement")

    # 4. The standby bulletin, drafted in both languages, waiting for rumors.
    standby = await standby_bulletin(system, notice_id)
    hops.mark("acknowledged -> standby bulletin drafted")
    assert standby["state"] == "drafted"
    assert standby["status"] == "Actual"
    assert set(standby["texts"]) == {"en", "es"}
    assert "District 4" in standby["texts"]["en"]["headline"]
    assert "Distrito 4" in standby["texts"]["es"]["headline"]
    assert "do not enforce federal immigration law" in standby["texts"]["en"]["body"]
    assert "no hacen cumplir las leyes federales de inmigración" in standby["texts"]["es"]["body"]
    assert standby["guardrails"] == []
    _assert_no_restricted(json.dumps(standby))

    # 5. Three reports, two in Spanish: one rumor.
    reports = await report_rumors(system)
    hops.mark("three rumor reports -> 201 each")
    rumor_ids = {r["rumor_id"] for r in reports}
    assert len(rumor_ids) == 1, reports
    rumor_id = rumor_ids.pop()
    assert [r["new_rumor"] for r in reports] == [True, False, False]
    assert [r["report_count"] for r in reports] == [1, 2, 3]
    assert {r["area_code"] for r in reports} == {"district-4"}
    rumor = (
        await http.get(f"{system.rumor_url}/v1/rumors/{rumor_id}", headers=system.auth("author"))
    ).json()
    assert rumor["report_count"] == 3
    assert sorted(r["language"] for r in rumor["reports"]) == ["en", "es", "es"]
    assert rumor["assessment"] is None, "nothing is assessed automatically"

    # 6. The assessment drafts a Rumor/Fact bulletin.
    suggested = rumor["suggestion"]["assessment"]
    assessed = await assess_rumor(system, rumor_id, assessment=suggested, notice_id=notice_id)
    assert assessed.status_code == 200, assessed.text
    bulletin_id = assessed.json()["bulletin_id"]
    assert assessed.json()["rumor"]["assessment"] == suggested
    draft = (
        await http.get(
            f"{system.rumor_url}/v1/bulletins/{bulletin_id}", headers=system.auth("author")
        )
    ).json()
    assert draft["kind"] == "rumor_fact"
    assert draft["state"] == "drafted"
    assert draft["rumor_id"] == rumor_id
    assert draft["notice_ids"] == [notice_id]
    assert draft["guardrails"] == []
    assert set(draft["texts"]) == {"en", "es"}
    hops.mark(f"assessment ({suggested}) -> Rumor/Fact drafted")

    # 7. Its author may not approve it; a second vetter signs off both languages and does.
    for sign_off, reason in (
        ((), "vetting.author_cannot_approve"),
        (("en", "es"), "vetting.author_cannot_sign_off"),
    ):
        refused = await approve(system, bulletin_id, who="author", sign_off=sign_off)
        assert refused.status_code == 403, refused.text
        assert refused.json()["reason_code"] == reason
    approved = await approve(system, bulletin_id, who="approver")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "published"
    assert sorted(approved.json()["signed_off"]) == ["en", "es"]
    version = approved.json()["version"]
    hops.mark("author refused (403); second vetter approves")

    # 8. Each liaison receives it, in its own language, at the webhook sink.
    def liaison_hooks() -> list[dict[str, Any]]:
        return [
            h
            for h in system.webhook.received
            if isinstance(h["payload"], dict) and h["payload"].get("bulletin_id") == bulletin_id
        ]

    await wait_until("both liaisons' webhooks", lambda: len(liaison_hooks()) >= 2)
    hops.mark("approved -> liaison webhooks")
    by_path = {h["path"]: h for h in liaison_hooks()}
    spanish = by_path[f"/liaisons/{cast.spanish_liaison_id}"]
    english = by_path[f"/liaisons/{cast.english_liaison_id}"]
    for received, language in ((spanish, "es"), (english, "en")):
        assert received["signature_valid"] is True
        assert received["payload"]["language"] == language
        assert received["payload"]["headline"] == draft["texts"][language]["headline"]
        assert received["payload"]["version"] == version
        assert received["payload"]["purpose"] == "bulletin"
    _assert_no_restricted(json.dumps([spanish["payload"], english["payload"]]))

    # 9. The radio desk's script: Spanish first, read aloud.
    radio = await http.get(
        f"{system.rumor_url}/v1/bulletins/{bulletin_id}/radio", headers=system.auth("liaison")
    )
    assert radio.status_code == 200, radio.text
    script = radio.text
    assert "[ESPAÑOL: leer al aire]" in script
    assert script.index("[ESPAÑOL: leer al aire]") < script.index("[ENGLISH]")
    spoken_es = script.split("[ESPAÑOL: leer al aire]")[1].split("[ENGLISH]")[0]
    assert spoken_es.strip().startswith("¿Rumor o realidad?")
    assert "Distrito cuatro" in spoken_es
    assert not re.search(r"\d", spoken_es), "numbers are spelled out to be read aloud"
    hops.mark("radio script (Spanish first)")

    # 10. The public feeds, no token: the CAP entry (valid CAP 1.2) and the Atom feed.
    cap = await http.get(f"{system.rumor_url}/feeds/cap/{bulletin_id}/{version}.xml")
    assert cap.status_code == 200, cap.text
    assert cap.headers["content-type"].startswith("application/cap+xml")
    CAP_SCHEMA.validate(cap.text)
    cap_alert = ET.fromstring(cap.text)
    assert cap_alert.findtext(f"{CAP}identifier") == f"urn:aviso:bulletin:{bulletin_id}:{version}"
    assert cap_alert.findtext(f"{CAP}msgType") == "Alert"
    assert cap_alert.findtext(f"{CAP}status") == "Actual"
    infos = list(cap_alert.iter(f"{CAP}info"))
    assert [i.findtext(f"{CAP}language") for i in infos] == ["en-US", "es-US"]
    assert [i.findtext(f"{CAP}headline") for i in infos] == [
        draft["texts"]["en"]["headline"],
        draft["texts"]["es"]["headline"],
    ]
    atom = await http.get(f"{system.rumor_url}/feeds/bulletins.atom")
    assert atom.status_code == 200
    assert atom.headers["content-type"].startswith("application/atom+xml")
    atom_ids = {e.findtext(f"{ATOM}id") for e in ET.fromstring(atom.text).iter(f"{ATOM}entry")}
    assert {
        f"urn:aviso:bulletin:{bulletin_id}:en",
        f"urn:aviso:bulletin:{bulletin_id}:es",
    } <= atom_ids
    cap_index = await http.get(f"{system.rumor_url}/feeds/cap.xml")
    assert f"urn:aviso:bulletin:{bulletin_id}:{version}" in cap_index.text
    assert standby["bulletin_id"] not in atom.text, "an unapproved standby is never public"
    _assert_no_restricted(cap.text, atom.text, script)
    hops.mark("CAP entry + Atom feed")

    # Every delivery arrived exactly once; nothing escalated to the backup.
    await wait_until(
        "every bulletin e-mail",
        lambda: (
            {(t, c) for (t, c), ids in _bulletin_receipts(system, bulletin_id).items() if ids}
            >= cast.bulletin_targets()
        ),
    )
    hops.mark("remaining bulletin e-mails (liaisons, radio desk)")
    await _assert_timelines(system, alert_id=alert_id, bulletin_id=bulletin_id)
    receipts = _bulletin_receipts(system, bulletin_id)
    assert set(receipts) == cast.bulletin_targets(), receipts
    assert all(len(ids) == 1 for ids in receipts.values()), receipts
    spoc = _alert_receipts(system, alert_id)
    assert spoc == {
        (cast.spoc_id, "webhook"): [hook["delivery_id"]],
        (cast.spoc_id, "email"): [mail["delivery_id"]],
    }, spoc

    _assert_correlated(
        system,
        correlation_id,
        ack_correlation_id,
        notice_id=notice_id,
        alert_id=alert_id,
        standby_id=standby["bulletin_id"],
    )
    print(hops.report())


def _alert_receipts(system: System, alert_id: str) -> dict[tuple[str, str], list[str | None]]:
    """Receipts at the sinks of the alert's notifications (SPOC and backup)."""
    hooks = [
        h
        for h in system.webhook.received
        if isinstance(h["payload"], dict) and h["payload"].get("alert_id") == alert_id
    ]
    mails = [m for m in system.smtp.received if alert_id in m["text"]]
    return deliveries_by_target(system, hooks=hooks, mails=mails)


def _bulletin_receipts(system: System, bulletin_id: str) -> dict[tuple[str, str], list[str | None]]:
    """Receipts at the sinks of the bulletin (liaisons' webhooks and e-mail, the radio desk).

    Only this bulletin is ever published in the story, so every e-mail to a liaison or the
    radio desk is one of its deliveries.
    """
    cast = system.cast
    hooks = [
        h
        for h in system.webhook.received
        if isinstance(h["payload"], dict) and h["payload"].get("bulletin_id") == bulletin_id
    ]
    addresses = {cast.spanish_liaison_email, cast.english_liaison_email, cast.radio_desk_email}
    mails = [m for m in system.smtp.received if set(m["to"]) & addresses]
    return deliveries_by_target(system, hooks=hooks, mails=mails)


async def _assert_timelines(system: System, *, alert_id: str, bulletin_id: str) -> None:
    cast, http = system.cast, system.client
    timeline = await http.get(
        f"{system.router_url}/v1/alerts/{alert_id}/timeline", headers=system.auth("ops")
    )
    assert timeline.status_code == 200, timeline.text
    assert timeline.json()["state"] == "acknowledged"
    entries = timeline.json()["entries"]
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "triggered", kinds
    assert kinds.index("triggered") < kinds.index("delivered") < kinds.index("acknowledged")
    delivered = sorted(
        (e["recipient_id"], e["channel"]) for e in entries if e["kind"] == "delivered"
    )
    assert delivered == [(cast.spoc_id, "email"), (cast.spoc_id, "webhook")], entries
    acks = [e for e in entries if e["kind"] == "acknowledged"]
    assert len(acks) == 1, entries
    assert acks[0]["recipient_id"] == cast.spoc_id
    assert acks[0]["method"] == "link"
    assert acks[0]["notice_version"] == 1
    assert "escalated" not in kinds, "acknowledged in time: no escalation"

    steps = await http.get(
        f"{system.rumor_url}/v1/bulletins/{bulletin_id}/timeline", headers=system.auth("ops")
    )
    assert steps.status_code == 200, steps.text
    actions = [(s["action"], s["actor_name"]) for s in steps.json()]
    author, approver = "Sgt. P. Morales (outreach unit)", "Lt. R. Daniels (public information)"
    assert actions[0] == ("drafted", author), actions
    vetting = [a for a in actions if a[0] in ("signed_off", "approved", "published")]
    assert vetting[-2:] == [("approved", approver), ("published", approver)], actions
    assert set(vetting[:-2]) == {("signed_off", approver)}, actions
    signed = {lang for s in steps.json() if s["action"] == "signed_off" for lang in _langs(s)}
    assert signed == {"en", "es"}, steps.json()
    delivered_steps = {
        (s["detail"]["recipient_id"], s["detail"]["channel"])
        for s in steps.json()
        if s["action"] == "delivered"
    }
    assert delivered_steps == cast.bulletin_targets()


def _langs(step: dict[str, Any]) -> list[str]:
    detail = step["detail"]
    return list(detail.get("languages") or [detail.get("language")])


def _assert_correlated(
    system: System,
    correlation_id: str,
    ack_correlation_id: str,
    *,
    notice_id: str,
    alert_id: str,
    standby_id: str,
) -> None:
    """The notice's correlation id is on the log lines of all three services.

    The chain it starts: intake's request (`notice.received`), router's alert and its
    deliveries, rumor_control's projection of the notice, and the standby bulletin drafted
    from the acknowledgement event: the click's own request keeps its id on router's
    request log line, but the event it causes stays in the notice's chain.
    """
    intake = records_with(system.intake.log_records(), correlation_id=correlation_id)
    routers = records_with(system.log_records(system.routers), correlation_id=correlation_id)
    rumors = records_with(system.log_records(system.rumor_controls), correlation_id=correlation_id)
    events = {
        "intake": sorted({str(r.get("event")) for r in intake}),
        "router": sorted({str(r.get("event")) for r in routers}),
        "rumor_control": sorted({str(r.get("event")) for r in rumors}),
    }
    print(f"\n[e2e story] log events carrying correlation id {correlation_id}: {events}")
    assert records_with(intake, event="notice.received", notice_id=notice_id), events
    assert records_with(routers, event="alert.triggered", notice_id=notice_id), events
    delivered = records_with(routers, event="alert.delivered", alert_id=alert_id)
    assert sorted(r["channel"] for r in delivered) == ["email", "webhook"], events
    assert records_with(rumors, event="notice.projected", notice_id=notice_id), events

    acked = records_with(system.log_records(system.routers), correlation_id=ack_correlation_id)
    assert records_with(acked, event="alert.acknowledged", alert_id=alert_id)
    drafted = records_with(
        system.log_records(system.rumor_controls), event="bulletin.drafted", bulletin_id=standby_id
    )
    assert [r["correlation_id"] for r in drafted] == [correlation_id], drafted
