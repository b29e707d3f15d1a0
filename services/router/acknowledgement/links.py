"""The one-click acknowledgement link: a signed token naming alert, version and person.

Opening the link never acknowledges (mail scanners and link previews open links too):
the confirmation page reads it with `link_page`, and only the page's POST acknowledges.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.signing import LinkTokenError, make_link_token, read_link_token
from services.router.alerting.queries import require_alert
from services.router.deps import RouterDeps
from services.router.domain import AlertRecord
from services.router.errors import AlertClosed, AlertNotFound, LinkRejected, StaleVersion
from services.router.unit_of_work import RouterUoW

__all__ = ["LinkClaims", "LinkPage", "ack_link", "link_page", "read_link"]

# Bounds on what a signed link may claim. A link is only as trustworthy as the secret that
# signed it, so its fields are checked like any input: a version or expiry no real link
# carries (10**30, 2**63) must never reach datetime or database arithmetic and overflow.
_MAX_VERSION = 2**31 - 1
_MAX_EXPIRY = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class LinkClaims:
    """What a verified one-click link says: this person may acknowledge this version."""

    alert_id: uuid.UUID
    notice_version: int
    person_id: uuid.UUID
    expires_at: datetime


def ack_link(
    deps: RouterDeps, *, alert_id: uuid.UUID, version: int, person_id: uuid.UUID, now: datetime
) -> tuple[str, datetime]:
    """A signed one-click link for `person_id` to acknowledge `version`, and when it expires."""
    expires_at = now + timedelta(seconds=deps.settings.router_ack_link_ttl_s)
    token = make_link_token(
        deps.link_secret,
        {"a": str(alert_id), "v": version, "p": str(person_id)},
        expires_at=int(expires_at.timestamp()),
    )
    return f"{deps.public_base_url}/ack?token={token}", expires_at


def read_link(deps: RouterDeps, token: str) -> LinkClaims:
    """Verify a one-click token; raises LinkRejected (expired, tampered or malformed)."""
    try:
        claims = read_link_token([deps.link_secret], token, now=int(deps.clock().timestamp()))
    except LinkTokenError as exc:
        raise LinkRejected(exc.reason) from None
    try:
        version, expiry = claims["v"], claims["exp"]
        if not isinstance(version, int) or not 1 <= version <= _MAX_VERSION:
            raise ValueError("version")
        if not isinstance(expiry, int) or expiry > _MAX_EXPIRY:
            raise ValueError("expiry")
        return LinkClaims(
            alert_id=uuid.UUID(str(claims["a"])),
            notice_version=version,
            person_id=uuid.UUID(str(claims["p"])),
            expires_at=datetime.fromtimestamp(expiry, UTC),
        )
    except (KeyError, ValueError):
        raise LinkRejected("malformed") from None


@dataclass(frozen=True)
class LinkPage:
    """What the confirmation page of a valid link shows, or why it cannot be acknowledged."""

    alert: AlertRecord
    claims: LinkClaims
    refusal: AlertClosed | StaleVersion | None = None

    @property
    def already(self) -> bool:
        return self.alert.acknowledged_version == self.claims.notice_version


async def link_page(uow: RouterUoW, *, deps: RouterDeps, token: str) -> LinkPage:
    """Read a link without acknowledging it; raises LinkRejected for a link not to honour."""
    claims = read_link(deps, token)
    try:
        alert = await require_alert(uow, claims.alert_id)
    except AlertNotFound:
        raise LinkRejected("mismatch") from None
    refusal: AlertClosed | StaleVersion | None = None
    if alert.state == "resolved" and alert.acknowledged_version != claims.notice_version:
        refusal = AlertClosed(resolution=alert.resolution)
    elif claims.notice_version < alert.notice_version:
        refusal = StaleVersion(
            current_version=alert.notice_version, alert_id=alert.id, notice_id=alert.notice_id
        )
    return LinkPage(alert, claims, refusal)
