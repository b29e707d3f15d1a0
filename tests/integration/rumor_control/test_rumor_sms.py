"""Community subscribers by SMS through a real Kannel, Kafka and PostgreSQL.

Kannel routes the community keywords (its sms-service `keyword` and `aliases`) to
rumor_control's `/sms/keywords` and every other text to router's `/sms/replies`, as the
local stack configures it; a relay (tests/support/sms_gateway.py) forwards Kannel's
requests to the in-process app. What phones received is read from the fake SMSC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploy.local import kannel
from schemas.topics import BULLETINS
from services.common.sms_segments import count_segments
from tests.integration.rumor_control.rumor_harness import RumorApp, payloads, rumor_app_running
from tests.support import infra
from tests.support.kafka_io import read_topic, wait_for
from tests.support.sms_gateway import Relay, forwarding, serve_relay, texts_to

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

MO_SECRET = "rumor-sms-test-reply-secret"
DLR_SECRET = "rumor-sms-test-dlr-secret"
SPANISH = "+15557650401"
ENGLISH = "+15557650402"
REPORTED = "+15557650403"
FAILING = "+15557650404"
LIAISON_ES = "+15557650405"
LIAISON_EN = "+15557650406"


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    with serve_relay() as found:
        yield found


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, relay: Relay
) -> Iterator[tuple[kannel.KannelEndpoints, Path]]:
    data_dir = tmp_path_factory.mktemp("kannel")
    try:
        endpoints = kannel.start(
            data_dir=data_dir,
            mo_url=f"{relay.url}/sms/replies?key={MO_SECRET}",
            keywords_url=f"{relay.url}/sms/keywords?key={MO_SECRET}",
        )
    except Exception as exc:
        infra.infra_unavailable("Kannel", exc)
        raise
    try:
        yield endpoints, data_dir
    finally:
        kannel.stop(data_dir=data_dir)


def _with_liaison_numbers(department: dict[str, Any]) -> None:
    spanish, english = department["liaisons"]
    spanish["sms"] = LIAISON_ES
    english["sms"] = LIAISON_EN


@pytest.fixture
async def rc(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_url: str,
    kafka_bootstrap: str,
    gateway: tuple[kannel.KannelEndpoints, Path],
    relay: Relay,
) -> AsyncIterator[RumorApp]:
    endpoints, _ = gateway
    # A test that asks for `liaison_numbers` gets the department file's liaisons with SMS numbers.
    liaisons = _with_liaison_numbers if "liaison_numbers" in request.fixturenames else None
    database = await infra.fresh_database_async(postgres_url)
    try:
        async with rumor_app_running(
            tmp_path, database_url=database, kafka_bootstrap=kafka_bootstrap, recipients=liaisons,
            kannel_sendsms_url=endpoints.sendsms_url, kannel_username=endpoints.username,
            kannel_password=endpoints.password, kannel_sender=kannel.SHORT_CODE,
            kannel_mo_secret=MO_SECRET, kannel_dlr_url=f"{relay.url}/sms/reports",
            kannel_dlr_secret=DLR_SECRET, kannel_handset_retry_s=0.2,
        ) as running:  # fmt: skip
            yield running
    finally:
        await infra.drop_database_async(database)


async def _published(rc: RumorApp, place: str) -> str:
    """A rumor assessed as unverified, its bulletin approved: the bulletin id."""
    observed = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    report = await rc.report(
        claim="Dicen que la migra está en la tienda", place=place, channel="phone_line",
        observed_at=observed.isoformat(),
    )  # fmt: skip
    assessed = await rc.client.post(
        f"/v1/rumors/{report['rumor_id']}/assess",
        json={"assessment": "Unable to verify"},
        headers=rc.auth("vetter_a"),
    )
    assert assessed.status_code == 200, assessed.text
    bulletin_id = str(assessed.json()["bulletin_id"])
    approved = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )
    assert approved.status_code == 200, approved.text
    return bulletin_id


def _received(data_dir: Path, number: str) -> list[kannel.FakeSms]:
    return [s for s in kannel.received(data_dir=data_dir) if s.receiver == number]


async def _next_message(data_dir: Path, number: str, before: int) -> str:
    """The whole message (all its segments) that follows the first `before` segments."""
    first = (await texts_to(data_dir, number, before + 1))[before]
    parts = first.concatenation[1] if first.concatenation else 1
    return _decoded((await texts_to(data_dir, number, before + parts))[before : before + parts])


async def _text(data_dir: Path, number: str, body: str) -> str:
    """Send `body` from `number` and return the reply the phone received."""
    before = len(_received(data_dir, number))
    kannel.inject(number, kannel.SHORT_CODE, body, data_dir=data_dir)
    return await _next_message(data_dir, number, before)


def _decoded(segments: list[kannel.FakeSms]) -> str:
    ordered = sorted(segments, key=lambda s: s.concatenation[2] if s.concatenation else 0)
    data = b"".join(s.data for s in ordered)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-16-be")


async def test_opt_in_bulletins_in_each_language_and_alto_for_the_next_bulletin(
    rc: RumorApp, gateway: tuple[kannel.KannelEndpoints, Path], relay: Relay, kafka_bootstrap: str
) -> None:
    _, data_dir = gateway
    async with forwarding(relay, rc.client, paths=("/sms/keywords",)) as answered:
        # Opt in: a keyword, then the confirmation reply; each answered by SMS.
        assert "CONFIRMO" in await _text(data_dir, SPANISH, "UNIRME")
        assert "recibirá" in await _text(data_dir, SPANISH, "Confirmo")
        assert "YES" in await _text(data_dir, ENGLISH, "join")
        assert "STOP" in await _text(data_dir, ENGLISH, "YES")

        spanish_before = len(_received(data_dir, SPANISH))
        english_before = len(_received(data_dir, ENGLISH))
        first = await _published(rc, "Mercado Latino")
        detail = await rc.bulletin(first)
        spanish_text = detail["texts"]["es"]["sms"]
        english_text = detail["texts"]["en"]["sms"]
        expected = count_segments(spanish_text)
        assert expected.encoding == "UCS-2"  # "Aún sin verificar ...": á, í, ó or ú
        parts = (await texts_to(data_dir, SPANISH, spanish_before + expected.segments))[
            spanish_before:
        ]
        assert len(parts) == expected.segments
        if expected.segments > 1:
            assert {p.concatenation[1] for p in parts if p.concatenation} == {expected.segments}
        assert _decoded(parts) == spanish_text
        assert await _next_message(data_dir, ENGLISH, english_before) == english_text

        # ALTO: confirmed by SMS, and the next bulletin does not reach that phone.
        assert "ALTA" in await _text(data_dir, SPANISH, "ALTO")
        spanish_before = len(_received(data_dir, SPANISH))
        english_before = len(_received(data_dir, ENGLISH))
        second = await _published(rc, "Escuela Lincoln")
        english_second = (await rc.bulletin(second))["texts"]["en"]["sms"]
        assert await _next_message(data_dir, ENGLISH, english_before) == english_second
        records = await rc.delivery_records(second)
        sms = [r for r in records if r["channel"] == "sms"]
        assert [r["language"] for r in sms] == ["en"]
        assert len(_received(data_dir, SPANISH)) == spanish_before  # nothing after ALTO's reply
        assert {status for _, status in answered} == {204}

    # Canary: the numbers are in no log line of the service, no topic, no Kannel log.
    on_topic = await read_topic(
        kafka_bootstrap,
        BULLETINS,
        until=lambda rs: any(second.encode() in (r.key or b"") for r in rs),
        key_filter=lambda k: k in (first.encode(), second.encode()),
    )
    service_log = rc.log_file.read_text("utf-8")
    for number in (SPANISH, ENGLISH):
        digits = number.lstrip("+")
        assert digits not in service_log
        assert not [r for r in on_topic if digits.encode() in (r.value or b"")]
        for path in (data_dir / "logs").iterdir():
            if path.name != "fakesmsc.log":  # the carrier's side
                assert digits not in path.read_text("utf-8", "replace"), path.name


def _sms_steps(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["detail"].get("channel") == "sms"]


async def _timeline_until(rc: RumorApp, bulletin_id: str, done: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        found[:] = _sms_steps(await rc.timeline(bulletin_id))
        return bool(done(found))

    await wait_for(check, timeout=60, interval=0.2)
    return found


async def test_a_spanish_bulletins_sms_shows_the_gateways_reports_on_its_record(
    rc: RumorApp, gateway: tuple[kannel.KannelEndpoints, Path], relay: Relay
) -> None:
    _, data_dir = gateway
    paths = ("/sms/keywords", "/sms/reports")
    async with forwarding(relay, rc.client, paths=paths) as answered:
        assert "CONFIRMO" in await _text(data_dir, REPORTED, "UNIRME")
        assert "recibirá" in await _text(data_dir, REPORTED, "CONFIRMO")
        bulletin_id = await _published(rc, "Mercado Latino")

        def reported(steps: list[dict[str, Any]]) -> bool:
            return any(s["detail"].get("status") == "delivered" for s in steps)

        steps = await _timeline_until(rc, bulletin_id, reported)
        # The gateway's report may be recorded before the engine has settled the send it
        # reports on (the fake SMSC answers within milliseconds): wait for both.
        sms: list[dict[str, Any]] = []

        async def settled() -> bool:
            records = await rc.delivery_records(bulletin_id)
            sms[:] = [r for r in records if r["channel"] == "sms"]
            return len(sms) == 1 and sms[0]["state"] not in ("pending", "sending")

        await wait_for(settled, timeout=60, interval=0.2)
        (record,) = sms
        assert (record["language"], record["state"], record["report"]) == (
            "es",
            "delivered",
            "delivered",
        )
        assert record["reported_at"] is not None
        # The same on the bulletin's deliveries for ops: the report and the segments sent.
        listed = await rc.client.get(
            f"/v1/bulletins/{bulletin_id}/deliveries", headers=rc.auth("ops")
        )
        (shown,) = [d for d in listed.json()["deliveries"] if d["channel"] == "sms"]
        assert (shown["report"], shown["segments"]) == ("delivered", record["segments"])
        assert shown["segments"] >= 1
        assert shown["reported_at"] is not None
        reports = [s["detail"]["status"] for s in steps if s["action"] == "delivery_report"]
        # The fake SMSC reports "accepted" then "delivered"; Kannel may call back in either
        # order, and a late "accepted" never replaces "delivered".
        assert reports[-1] == "delivered"
        assert set(reports) <= {"accepted", "delivered"}
        assert not [s for s in steps if s["action"] == "delivery_failed"]
        assert {status for path, status in answered if path == "/sms/reports"} == {204}
    digits = REPORTED.lstrip("+")
    assert digits not in str(steps)
    assert digits not in rc.log_file.read_text("utf-8")


async def test_a_handset_failure_is_sent_again_then_fails_for_good(
    rc: RumorApp, gateway: tuple[kannel.KannelEndpoints, Path], relay: Relay
) -> None:
    _, data_dir = gateway

    def handset_failed(target: str) -> str:
        # The carrier's word instead of the fake SMSC's: not delivered to the handset.
        return target.replace("&type=1&", "&type=2&") if "/sms/reports?" in target else target

    paths = ("/sms/keywords", "/sms/reports")
    async with forwarding(relay, rc.client, paths=paths, rewrite=handset_failed):
        assert "YES" in await _text(data_dir, FAILING, "JOIN")
        assert "STOP" in await _text(data_dir, FAILING, "YES")
        before = len(_received(data_dir, FAILING))
        bulletin_id = await _published(rc, "Escuela Lincoln")
        english = (await rc.bulletin(bulletin_id))["texts"]["en"]["sms"]
        parts = count_segments(english).segments

        def final(steps: list[dict[str, Any]]) -> bool:
            return any(s["detail"].get("final") is True for s in steps)

        steps = await _timeline_until(rc, bulletin_id, final)
        # Sent twice in all (kannel_handset_attempts = 2): the retry reached the phone.
        await texts_to(data_dir, FAILING, before + 2 * parts)
    failed = [s["detail"] for s in steps if s["action"] == "delivery_failed"]
    assert [(d["reason"], d["final"]) for d in failed] == [("rejected", False), ("rejected", True)]
    (record,) = [r for r in await rc.delivery_records(bulletin_id) if r["channel"] == "sms"]
    assert (record["state"], record["attempts"], record["report"]) == ("failed", 2, "failed")
    events = payloads(
        await read_topic(
            rc.settings.kafka_bootstrap_servers, BULLETINS,
            until=lambda rs: any(b'"final":true' in (r.value or b"").replace(b" ", b"")
                                 for r in rs),
            key_filter=lambda k: k == bulletin_id.encode(),
        )
    )  # fmt: skip
    # (The harness's webhook sink fails its first call: that failure is not this test's.)
    failures = [e for e in events if e.get("channel") == "sms"]
    assert [(e["reason"], e["final"]) for e in failures] == [
        ("rejected", False),
        ("rejected", True),
    ]


@pytest.fixture
def liaison_numbers() -> tuple[str, str]:
    """The Spanish and the English liaison's numbers in the department file."""
    return LIAISON_ES, LIAISON_EN


async def test_liaisons_with_a_number_in_the_department_file_get_bulletins_by_sms(
    liaison_numbers: tuple[str, str],
    rc: RumorApp,
    gateway: tuple[kannel.KannelEndpoints, Path],
    relay: Relay,
    kafka_bootstrap: str,
) -> None:
    _, data_dir = gateway
    spanish_before = len(_received(data_dir, LIAISON_ES))
    english_before = len(_received(data_dir, LIAISON_EN))
    async with forwarding(relay, rc.client, paths=("/sms/reports",)) as answered:
        bulletin_id = await _published(rc, "Mercado Latino")
        texts = (await rc.bulletin(bulletin_id))["texts"]
        assert await _next_message(data_dir, LIAISON_ES, spanish_before) == texts["es"]["sms"]
        assert await _next_message(data_dir, LIAISON_EN, english_before) == texts["en"]["sms"]

        def both_reported(steps: list[dict[str, Any]]) -> bool:
            done = {
                s["detail"]["recipient_id"]
                for s in steps
                if s["action"] == "delivery_report" and s["detail"]["status"] == "delivered"
            }
            return len(done) == 2

        steps = await _timeline_until(rc, bulletin_id, both_reported)
        assert {status for _, status in answered} == {204}
    liaisons = {str(liaison["id"]): liaison["language"] for liaison in rc.department["liaisons"]}
    sms = [r for r in await rc.delivery_records(bulletin_id) if r["channel"] == "sms"]
    assert sorted((r["recipient_id"], r["language"]) for r in sms) == sorted(liaisons.items())
    assert {r["state"] for r in sms} == {"delivered"}

    # Canary: the department file's numbers are in no log line, topic or timeline entry,
    # nor in Kannel's own logs (the fake SMSC's is the carrier's side).
    on_topic = await read_topic(
        kafka_bootstrap,
        BULLETINS,
        until=lambda rs: any(bulletin_id.encode() in (r.key or b"") for r in rs),
        key_filter=lambda k: k == bulletin_id.encode(),
    )
    service_log = rc.log_file.read_text("utf-8")
    everything = await rc.timeline(bulletin_id)
    for number in liaison_numbers:
        digits = number.lstrip("+")
        assert digits not in service_log
        assert digits not in str(everything)
        assert not [r for r in on_topic if digits.encode() in (r.value or b"")]
        for path in (data_dir / "logs").iterdir():
            if path.name != "fakesmsc.log":
                assert digits not in path.read_text("utf-8", "replace"), path.name
    assert {s["detail"]["channel"] for s in steps} == {"sms"}
