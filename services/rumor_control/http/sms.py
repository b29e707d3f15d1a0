"""The SMS gateway's callbacks: community keywords and delivery reports (Kannel calls them).

`GET /sms/reports` is the `dlr-url` every bulletin SMS asks for: it names the delivery and
signs its id (`sms_reports.dlr_token`), so only the gateway handed the URL can report.

`GET /sms/keywords?key=<kannel_mo_secret>`: smsbox's sms-service for the keywords
JOIN/UNIRME, YES/CONFIRMO, STOP/ALTO and START/ALTA fetches this URL with the phone's
number and text (see `community.keywords`); the shared secret in the URL authenticates
the gateway. The reply is texted back through the gateway once the change has committed
(the sms-service itself sends nothing: `max-messages = 0`).
"""

from __future__ import annotations

import hmac
import uuid

from fastapi import APIRouter, Request, Response

from services.common.delivery import DeliveryError
from services.common.delivery.handset import until_settled
from services.common.delivery.sms_reports import (
    InvalidCallback,
    parse_delivery_report,
    parse_inbound,
)
from services.common.logging import get_logger
from services.common.problems import bad_request, forbidden, service_unavailable
from services.rumor_control.community.use_cases import handle_keyword
from services.rumor_control.delivery.reports import record_sms_report
from services.rumor_control.deps import RumorControlDeps

__all__ = ["KEYWORDS_PATH", "REPORTS_PATH", "routes"]

log = get_logger(__name__)

KEYWORDS_PATH = "/sms/keywords"
REPORTS_PATH = "/sms/reports"


def routes(deps: RumorControlDeps) -> APIRouter:
    """The routes Kannel delivers community keywords and delivery reports to."""
    router = APIRouter(tags=["sms"])
    secret = deps.settings.kannel_mo_secret.get_secret_value()
    dlr_secret = deps.settings.kannel_dlr_secret.get_secret_value().encode()

    @router.get(REPORTS_PATH, status_code=204, summary="A delivery report from the SMS gateway")
    async def delivery_report(request: Request) -> Response:
        """Record how far a bulletin SMS got (accepted, delivered, failed); 503: ask again."""
        try:
            report = parse_delivery_report(dict(request.query_params), secret=dlr_secret)
        except InvalidCallback as exc:
            log.warning("sms.report_refused", reason=exc.reason)
            if exc.reason == "signature":
                raise forbidden("The callback is not signed for this delivery.") from None
            raise bad_request("The callback is malformed.") from None

        async def record() -> None:
            async with deps.unit_of_work() as uow:
                await record_sms_report(uow, deps=deps, report=report)
                await uow.commit()

        if await until_settled(record):
            return Response(status_code=204)
        log.warning("sms.report_before_settlement", delivery_id=report.delivery_id)
        raise service_unavailable("The delivery is being recorded.", retry_after_s=2)

    @router.get(KEYWORDS_PATH, status_code=204, summary="A keyword (SMS) from a phone")
    async def keyword(request: Request) -> Response:
        """Subscribe, confirm, stop or start bulletins by SMS; the reply is texted back."""
        if not hmac.compare_digest(request.query_params.get("key", "").encode(), secret.encode()):
            log.warning("sms.keyword_refused", reason="key")
            raise forbidden("The callback does not carry the shared secret.")
        try:
            inbound = parse_inbound(request.scope.get("query_string", b""))
        except InvalidCallback as exc:
            log.warning("sms.keyword_refused", reason=exc.reason)
            raise bad_request("The callback is malformed.") from None
        async with deps.unit_of_work() as uow:
            outcome = await handle_keyword(uow, deps=deps, sender=inbound.sender, text=inbound.text)
            await uow.commit()
        if outcome.reply is not None and deps.replies is not None:
            # Not durable: a reply lost to a gateway outage is not sent again, and the
            # person texts the keyword again (the change itself has committed).
            try:
                await deps.replies.send(
                    to=inbound.sender, text=outcome.reply, delivery_id=str(uuid.uuid4())
                )
            except DeliveryError as exc:
                log.warning("sms.reply_not_sent", reason=exc.reason)
        return Response(status_code=204)

    return router
