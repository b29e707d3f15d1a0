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

import uuid

from fastapi import APIRouter, Request, Response

from services.common.delivery import DeliveryError
from services.common.delivery.callbacks import REPORTS_PATH, add_report_route, inbound_message
from services.common.logging import get_logger
from services.rumor_control.community.use_cases import handle_keyword
from services.rumor_control.delivery.reports import record_sms_report
from services.rumor_control.deps import RumorControlDeps

__all__ = ["KEYWORDS_PATH", "REPORTS_PATH", "routes"]

log = get_logger(__name__)

KEYWORDS_PATH = "/sms/keywords"


def routes(deps: RumorControlDeps) -> APIRouter:
    """The routes Kannel delivers community keywords and delivery reports to."""
    router = APIRouter(tags=["sms"])
    secret = deps.settings.kannel_mo_secret.get_secret_value()

    add_report_route(
        router,
        dlr_secret=deps.settings.kannel_dlr_secret.get_secret_value().encode(),
        unit_of_work=deps.unit_of_work,
        record=lambda uow, report: record_sms_report(uow, deps=deps, report=report),
        description="Record how far a bulletin SMS got (accepted, delivered, failed); 503: "
        "ask again.",
    )

    @router.get(KEYWORDS_PATH, status_code=204, summary="A keyword (SMS) from a phone")
    async def keyword(request: Request) -> Response:
        """Subscribe, confirm, stop or start bulletins by SMS; the reply is texted back."""
        inbound = inbound_message(request, secret=secret, event="sms.keyword_refused")
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
