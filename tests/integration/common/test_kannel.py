"""SMS through a real Kannel (bearerbox + smsbox) with its fake SMSC as the carrier.

What the fake SMSC records is what a carrier would have been handed: segments with their
concatenation headers, GSM text or UCS-2 bytes. Delivery reports and replies come back
over real HTTP to a receiver the test runs, exactly as they would reach Aviso.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import structlog

from deploy.local import kannel
from services.common.delivery import DeliveryError, KannelSender
from services.common.delivery.sms_reports import (
    parse_delivery_report,
    parse_inbound,
)
from services.common.sms_segments import count_segments
from tests.support.infra import infra_unavailable

DLR_SECRET = b"test-dlr-secret"
ALERT_EN = "AVISO DRILL: advance notice received for Madison. Open Aviso to acknowledge: reply 1."
BULLETIN_ES = (
    "Boletín de la policía de Madison: no hay ninguna operación de inmigración confirmada "
    "hoy en la ciudad. Los rumores sobre redadas en escuelas y lugares de trabajo son falsos. "
    "La policía no detiene a nadie por su situación migratoria. ¿Preguntas? Llame a la línea "
    "en español o venga al foro mensual de la radio."
)


@dataclass
class Callbacks:
    """Raw request targets (path and query) received over HTTP, in order."""

    targets: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def matching(self, path: str) -> list[str]:
        with self.lock:
            return [t for t in self.targets if urlsplit(t).path == path]

    def wait(self, path: str, count: int, within: float = 20.0) -> list[str]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = self.matching(path)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} callback(s) on {path} expected, got {self.matching(path)}")


@pytest.fixture(scope="module")
def callbacks() -> Iterator[tuple[Callbacks, str]]:
    received = Callbacks()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with received.lock:
                received.targets.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the phone numbers in these requests must not reach test output

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, callbacks: tuple[Callbacks, str]
) -> Iterator[tuple[kannel.KannelEndpoints, Path]]:
    data_dir = tmp_path_factory.mktemp("kannel")
    _, base = callbacks
    try:
        endpoints = kannel.start(data_dir=data_dir, mo_url=f"{base}/mo?key=shared")
    except Exception as exc:
        infra_unavailable("Kannel", exc)
        raise
    try:
        yield endpoints, data_dir
    finally:
        kannel.stop(data_dir=data_dir)


def sender_for(endpoints: kannel.KannelEndpoints, dlr_base: str | None = None) -> KannelSender:
    return KannelSender(
        sendsms_url=endpoints.sendsms_url,
        username=endpoints.username,
        password=endpoints.password,
        sender=kannel.SHORT_CODE,
        dlr_url=f"{dlr_base}/dlr" if dlr_base else None,
        dlr_secret=DLR_SECRET,
        max_segments=6,
    )


def segments_to(
    data_dir: Path, number: str, count: int, within: float = 20.0
) -> list[kannel.FakeSms]:
    deadline = time.monotonic() + within
    found: list[kannel.FakeSms] = []
    while time.monotonic() < deadline:
        found = [sms for sms in kannel.received(data_dir=data_dir) if sms.receiver == number]
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{count} segment(s) expected at the fake SMSC, got {len(found)}")


async def test_english_alert_goes_as_one_gsm7_segment_and_reports_delivery(
    gateway: tuple[kannel.KannelEndpoints, Path], callbacks: tuple[Callbacks, str]
) -> None:
    endpoints, data_dir = gateway
    received, base = callbacks
    delivery_id = str(uuid.uuid4())
    sender = sender_for(endpoints, dlr_base=base)
    try:
        receipt = await sender.send(to="+15550100001", text=ALERT_EN, delivery_id=delivery_id)
    finally:
        await sender.close()

    assert (receipt.encoding, receipt.segments) == ("GSM-7", 1)
    (segment,) = segments_to(data_dir, "+15550100001", 1)
    assert segment.udh == b""
    assert segment.data.decode() == ALERT_EN
    assert segment.sender == kannel.SHORT_CODE

    # The fake SMSC acknowledges (8) and then reports the handset delivery (1).
    reports = []
    for target in received.wait("/dlr", 2):
        params = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        if params.get("delivery_id") == delivery_id:
            reports.append(parse_delivery_report(params, secret=DLR_SECRET))
    assert sorted(r.status for r in reports) == ["accepted", "delivered"]
    assert all(r.reported_at is not None for r in reports)


async def test_long_spanish_bulletin_goes_as_concatenated_ucs2(
    gateway: tuple[kannel.KannelEndpoints, Path],
) -> None:
    endpoints, data_dir = gateway
    expected = count_segments(BULLETIN_ES)
    assert expected.encoding == "UCS-2"
    assert expected.segments == 5  # 310 characters, 67 a segment
    sender = sender_for(endpoints)
    try:
        receipt = await sender.send(
            to="+15550100002", text=BULLETIN_ES, delivery_id=str(uuid.uuid4())
        )
    finally:
        await sender.close()

    assert (receipt.encoding, receipt.segments) == ("UCS-2", expected.segments)
    parts = segments_to(data_dir, "+15550100002", expected.segments)
    assert len(parts) == expected.segments
    headers = [part.concatenation for part in parts]
    assert all(h is not None for h in headers)
    assert {h[0] for h in headers if h} == {headers[0][0] if headers[0] else -1}  # one reference
    assert sorted(h[2] for h in headers if h) == list(range(1, expected.segments + 1))
    assert {h[1] for h in headers if h} == {expected.segments}
    ordered = sorted(parts, key=lambda p: p.concatenation[2] if p.concatenation else 0)
    assert b"".join(p.data for p in ordered).decode("utf-16-be") == BULLETIN_ES
    assert all(len(p.data) <= 134 for p in parts)  # 67 UCS-2 characters per segment


async def test_a_reply_from_a_phone_reaches_the_mo_url(
    gateway: tuple[kannel.KannelEndpoints, Path], callbacks: tuple[Callbacks, str]
) -> None:
    _, data_dir = gateway
    received, _ = callbacks
    before = len(received.matching("/mo"))
    kannel.inject("+15550100003", kannel.SHORT_CODE, "1 ACK", data_dir=data_dir)
    kannel.inject("+15550100003", kannel.SHORT_CODE, "Sí, ya leí el aviso", data_dir=data_dir)

    targets = received.wait("/mo", before + 2)[before:]
    replies = [parse_inbound(urlsplit(t).query) for t in targets]
    assert [r.text for r in replies] == ["1 ACK", "Sí, ya leí el aviso"]
    assert {r.sender for r in replies} == {"+15550100003"}
    assert {r.receiver for r in replies} == {kannel.SHORT_CODE}
    assert all("key=shared" in t for t in targets)  # the base URL's own query survives


async def test_refusals_and_an_absent_gateway_are_classified(
    gateway: tuple[kannel.KannelEndpoints, Path],
) -> None:
    endpoints, _ = gateway
    wrong = KannelSender(
        sendsms_url=endpoints.sendsms_url, username=endpoints.username, password="wrong"
    )
    with pytest.raises(DeliveryError) as refused:
        await wrong.send(to="+15550100004", text="hello", delivery_id=str(uuid.uuid4()))
    await wrong.close()
    assert (refused.value.reason, refused.value.permanent) == ("http_4xx", True)

    # Port 9 (discard) has no listener on loopback: nothing answers at all.
    gone = KannelSender(
        sendsms_url="http://127.0.0.1:9/cgi-bin/sendsms", username="a", password="b"
    )
    with pytest.raises(DeliveryError) as unreachable:
        await gone.send(to="+15550100004", text="hello", delivery_id=str(uuid.uuid4()))
    await gone.close()
    assert (unreachable.value.reason, unreachable.value.permanent) == ("unreachable", False)


async def test_a_canary_number_never_reaches_aviso_or_kannel_logs(
    gateway: tuple[kannel.KannelEndpoints, Path], callbacks: tuple[Callbacks, str]
) -> None:
    endpoints, data_dir = gateway
    received, base = callbacks
    canary = "+15557654321"
    sender = sender_for(endpoints, dlr_base=base)
    wrong = KannelSender(
        sendsms_url=endpoints.sendsms_url, username=endpoints.username, password="wrong"
    )
    with structlog.testing.capture_logs() as logs:
        try:
            await sender.send(to=canary, text=BULLETIN_ES, delivery_id=str(uuid.uuid4()))
            with pytest.raises(DeliveryError) as refused:
                await wrong.send(to=canary, text="hola", delivery_id=str(uuid.uuid4()))
            with pytest.raises(DeliveryError) as invalid:
                await sender.send(to=canary + " 1", text="hola", delivery_id=str(uuid.uuid4()))
        finally:
            await sender.close()
            await wrong.close()
        # The callbacks are the module's: wait for this test's reply, not another test's.
        before = len(received.matching("/mo"))
        kannel.inject(canary, kannel.SHORT_CODE, "OK", data_dir=data_dir)
        replies = received.wait("/mo", before + 1)[before:]
        inbound = [parse_inbound(urlsplit(t).query) for t in replies]
    segments_to(data_dir, canary, count_segments(BULLETIN_ES).segments)  # it did go out
    assert any(r.sender == canary for r in inbound)

    digits = canary.lstrip("+")
    assert digits not in str(refused.value)
    assert digits not in str(invalid.value)
    assert digits not in repr(inbound)
    assert not [entry for entry in logs if digits in str(entry)]
    # Kannel's own logs (box logs, their stdout, the access log); the fake SMSC's capture
    # is the carrier's side and is left out.
    kannel_logs = [p for p in (data_dir / "logs").iterdir() if p.name != "fakesmsc.log"]
    assert kannel_logs
    for path in kannel_logs:
        assert digits not in path.read_text(encoding="utf-8", errors="replace"), path.name
