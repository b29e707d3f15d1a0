"""The SMS gateway's callbacks: delivery reports and replies (Kannel fetches these URLs).

`GET /sms/reports` is the `dlr-url` every SMS asks for: it names the delivery and signs
its id (`sms_reports.dlr_token`), so only the gateway that was handed the URL can report.
`GET /sms/replies?key=<kannel_mo_secret>` is the `get-url` of smsbox's sms-service: a
phone's reply, authenticated by the shared secret in the URL. The reply's text arrives as
raw bytes in its charset (UCS-2 from a Spanish phone), so it is read from the raw query
string. Neither answer becomes an SMS (the sms-service has `max-messages = 0`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.common.delivery.callbacks import REPORTS_PATH, add_report_route, inbound_message
from services.router.acknowledgement import acknowledge_by_sms
from services.router.delivery import record_sms_report
from services.router.deps import RouterDeps

__all__ = ["REPLIES_PATH", "REPORTS_PATH", "sms_router"]

REPLIES_PATH = "/sms/replies"


def sms_router(deps: RouterDeps) -> APIRouter:
    """The two routes Kannel calls back on."""
    router = APIRouter(tags=["sms"])
    mo_secret = deps.settings.kannel_mo_secret.get_secret_value()

    add_report_route(
        router,
        dlr_secret=deps.settings.kannel_dlr_secret.get_secret_value().encode(),
        unit_of_work=deps.unit_of_work,
        record=lambda uow, report: record_sms_report(uow, deps=deps, report=report),
        description="Record how far an SMS got (accepted, delivered, failed); 503: ask again "
        "shortly.",
    )

    @router.get(REPLIES_PATH, status_code=204, summary="A reply (SMS) from a phone")
    async def reply(request: Request) -> Response:
        """A reply such as `1 A7K2` acknowledges; anything else changes nothing."""
        inbound = inbound_message(request, secret=mo_secret, event="sms.reply_refused")
        async with deps.unit_of_work() as uow:
            await acknowledge_by_sms(uow, deps=deps, sender=inbound.sender, text=inbound.text)
            await uow.commit()
        return Response(status_code=204)

    return router
