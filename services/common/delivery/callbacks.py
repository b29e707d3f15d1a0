"""Kannel's callbacks as HTTP routes, shared by every service that sends SMS.

`GET /sms/reports` is the `dlr-url` every SMS asks for: it names the delivery and signs its
id (`sms_reports.dlr_token`), so only the gateway handed the URL can report; the service
records the report on its own delivery record. An inbound message (a reply, a keyword)
arrives at a URL carrying the shared secret `kannel_mo_secret`; `inbound_message` checks
it and reads the text from the raw query string (it arrives as bytes in its charset, UCS-2
from a Spanish phone). Refusals are problems that never quote the number or the text.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from fastapi import APIRouter, Request, Response

from services.common.delivery.handset import until_settled
from services.common.delivery.sms_reports import (
    DeliveryReport,
    InboundSms,
    InvalidCallback,
    parse_delivery_report,
    parse_inbound,
)
from services.common.logging import get_logger
from services.common.problems import bad_request, forbidden, service_unavailable

__all__ = ["REPORTS_PATH", "RecordReport", "add_report_route", "inbound_message"]

log = get_logger(__name__)

REPORTS_PATH = "/sms/reports"


class _Transaction(Protocol):
    async def commit(self) -> None: ...


U = TypeVar("U", bound=_Transaction)
# The service's use case recording one report in the transaction it is given; it raises
# `NotSettled` while the engine is still recording the send the report is about.
RecordReport = Callable[[U, DeliveryReport], Awaitable[object]]


def add_report_route(
    router: APIRouter,
    *,
    dlr_secret: bytes,
    unit_of_work: Callable[[], AbstractAsyncContextManager[U]],
    record: RecordReport[U],
    description: str,
) -> None:
    """`GET /sms/reports`: how far an SMS got (accepted, delivered, failed), recorded in one
    transaction; 503 while the send it reports on is still being recorded (Kannel asks
    again)."""

    async def record_once(report: DeliveryReport) -> None:
        async with unit_of_work() as uow:
            await record(uow, report)
            await uow.commit()

    @router.get(
        REPORTS_PATH,
        status_code=204,
        summary="A delivery report from the SMS gateway",
        description=description,
    )
    async def delivery_report(request: Request) -> Response:
        try:
            report = parse_delivery_report(dict(request.query_params), secret=dlr_secret)
        except InvalidCallback as exc:
            raise _refused(exc, event="sms.report_refused") from None
        if await until_settled(lambda: record_once(report)):
            return Response(status_code=204)
        log.warning("sms.report_before_settlement", delivery_id=report.delivery_id)
        raise service_unavailable("The delivery is being recorded.", retry_after_s=2)


def inbound_message(request: Request, *, secret: str, event: str) -> InboundSms:
    """The message the gateway forwarded, once the shared secret in its URL is checked;
    raises a problem (logged as `event`, with the reason only) otherwise."""
    if not hmac.compare_digest(request.query_params.get("key", "").encode(), secret.encode()):
        log.warning(event, reason="key")
        raise forbidden("The callback does not carry the shared secret.")
    try:
        return parse_inbound(request.scope.get("query_string", b""))
    except InvalidCallback as exc:
        raise _refused(exc, event=event) from None


def _refused(exc: InvalidCallback, *, event: str) -> Exception:
    log.warning(event, reason=exc.reason)
    if exc.reason == "signature":
        return forbidden("The callback is not signed for this delivery.")
    return bad_request("The callback is malformed.")
