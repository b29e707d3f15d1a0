"""The SMS gateway's callbacks: delivery reports and replies (Kannel fetches these URLs).

`GET /sms/reports` is the `dlr-url` every SMS asks for: it names the delivery and signs
its id (`sms_reports.dlr_token`), so only the gateway that was handed the URL can report.
`GET /sms/replies?key=<kannel_mo_secret>` is the `get-url` of smsbox's sms-service: a
phone's reply, authenticated by the shared secret in the URL. The reply's text arrives as
raw bytes in its charset (UCS-2 from a Spanish phone), so it is read from the raw query
string. Neither answer becomes an SMS (the sms-service has `max-messages = 0`).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from services.common.delivery.handset import until_settled
from services.common.delivery.sms_reports import (
    InvalidCallback,
    parse_delivery_report,
    parse_inbound,
)
from services.common.logging import get_logger
from services.common.problems import bad_request, forbidden, service_unavailable
from services.router.acknowledgement import acknowledge_by_sms
from services.router.delivery import record_sms_report
from services.router.deps import RouterDeps

__all__ = ["REPLIES_PATH", "REPORTS_PATH", "sms_router"]

log = get_logger(__name__)

REPORTS_PATH = "/sms/reports"
REPLIES_PATH = "/sms/replies"


def _refused(exc: InvalidCallback, *, event: str) -> Exception:
    log.warning(event, reason=exc.reason)
    if exc.reason == "signature":
        return forbidden("The callback is not signed for this delivery.")
    return bad_request("The callback is malformed.")


def sms_router(deps: RouterDeps) -> APIRouter:
    """The two routes Kannel calls back on."""
    router = APIRouter(tags=["sms"])
    dlr_secret = deps.settings.kannel_dlr_secret.get_secret_value().encode()
    mo_secret = deps.settings.kannel_mo_secret.get_secret_value()

    @router.get(REPORTS_PATH, status_code=204, summary="A delivery report from the SMS gateway")
    async def delivery_report(request: Request) -> Response:
        """Record how far an SMS got (accepted, delivered, failed); 503: ask again shortly."""
        try:
            report = parse_delivery_report(dict(request.query_params), secret=dlr_secret)
        except InvalidCallback as exc:
            raise _refused(exc, event="sms.report_refused") from None

        async def record() -> None:
            async with deps.unit_of_work() as uow:
                await record_sms_report(uow, deps=deps, report=report)
                await uow.commit()

        if await until_settled(record):
            return Response(status_code=204)
        log.warning("sms.report_before_settlement", delivery_id=report.delivery_id)
        raise service_unavailable("The delivery is being recorded.", retry_after_s=2)

    @router.get(REPLIES_PATH, status_code=204, summary="A reply (SMS) from a phone")
    async def reply(request: Request) -> Response:
        """A reply such as `1 A7K2` acknowledges; anything else changes nothing."""
        key = request.query_params.get("key", "")
        if not hmac.compare_digest(key.encode(), mo_secret.encode()):
            log.warning("sms.reply_refused", reason="key")
            raise forbidden("The callback does not carry the shared secret.")
        try:
            inbound = parse_inbound(request.scope.get("query_string", b""))
        except InvalidCallback as exc:
            raise _refused(exc, event="sms.reply_refused") from None
        async with deps.unit_of_work() as uow:
            await acknowledge_by_sms(uow, deps=deps, sender=inbound.sender, text=inbound.text)
            await uow.commit()
        return Response(status_code=204)

    return router
