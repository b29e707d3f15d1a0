"""What router's notifications and one-click pages say, rendered from Jinja2 templates.

The notification body is rendered from releasable fields only, because it is kept on the
delivery record until it is sent; the acknowledgement link is added when the delivery
engine sends it (`delivery.compose`: it is a credential, never stored). Drills say DRILL
first, in the headline and in the body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from schemas.base import Status, is_drill
from services.router.domain import EscalationPosition, NoticeContent, drill_prefix

__all__ = [
    "RenderedMessage",
    "format_window",
    "render_footer",
    "render_notification",
    "render_page",
]

_TEMPLATES = Path(__file__).parent / "templates"
_HEADLINE_MAX = 300
_BODY_MAX = 20000

_PURPOSE_LABELS = {
    "alert": "Advance notice of a federal immigration operation",
    "escalation": "ESCALATED, not yet acknowledged: immigration operation notice",
    "update": "UPDATED notice of a federal immigration operation",
    "cancel": "CANCELLED: immigration operation notice",
}
_OPERATION_TYPES = {
    "targeted_arrest": "targeted arrest",
    "worksite": "worksite",
    "surveillance": "surveillance",
    "other": "other",
}


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        # HTML pages are escaped; plain text (messages) is not, it is not markup.
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
        # The templates ship with the code: no stat of the file on every render.
        auto_reload=False,
    )


@dataclass(frozen=True)
class RenderedMessage:
    """A notification's subject line and text."""

    headline: str
    body: str


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_window(start: datetime, end: datetime, timezone: str) -> str:
    """`Tue 26 Nov 2026 14:00 - 18:00 CST`, in the department's time zone."""
    zone = _zone(timezone)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    same_day = local_start.date() == local_end.date()
    end_text = local_end.strftime("%H:%M" if same_day else "%a %d %b %Y %H:%M")
    return f"{local_start:%a %d %b %Y %H:%M} - {end_text} {local_end.tzname()}"


def _horizon_text(horizon: timedelta) -> str:
    minutes = int(horizon.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"


def render_notification(
    *,
    alert_id: uuid.UUID,
    notice_id: uuid.UUID,
    notice_version: int,
    status: Status,
    urgency: str,
    content: NoticeContent,
    purpose: str,
    position: EscalationPosition | None,
    notice_url: str,
    timezone: str,
    horizon: timedelta,
    cancel_reason: str | None = None,
    console_url: str | None = None,
) -> RenderedMessage:
    """The releasable headline and body of one notification."""
    label = _PURPOSE_LABELS[purpose]
    if purpose == "update":
        label = f"{label} (version {notice_version})"
    urgent = "HIGH URGENCY - " if urgency == "high" and purpose != "cancel" else ""
    headline = f"{drill_prefix(status)}{urgent}{label} - {content.area}"[:_HEADLINE_MAX]
    body = (
        _environment()
        .get_template("notification.txt.j2")
        .render(
            drill=is_drill(status),
            status=status,
            headline=headline,
            purpose=purpose,
            step=position.step if position else 0,
            repeat=position.repeat if position else 0,
            notice_version=notice_version,
            cancel_reason=(cancel_reason or "no reason given").replace("_", " "),
            urgency=urgency,
            horizon=_horizon_text(horizon),
            content=content,
            window=format_window(content.window_start, content.window_end, timezone),
            operation_type=_OPERATION_TYPES.get(content.operation_type, content.operation_type),
            notice_url=notice_url,
            console_url=console_url,
            notice_id=notice_id,
            alert_id=alert_id,
        )
    )
    return RenderedMessage(headline=headline, body=body[:_BODY_MAX])


def render_footer(
    *,
    ack_url: str | None,
    ack_expires_at: datetime | None,
    correlation_id: str | None,
    delivery_id: uuid.UUID,
    timezone: str,
) -> str:
    """The part the adapter appends at send time: the one-click link and a reference.

    Two fixed lines, formatted here rather than through a template: it is rendered for
    every message at send time, and a template's render cost about three times as much.
    """
    reference = f"\nReference: {correlation_id or '-'} / delivery {delivery_id}\n"
    if not ack_url:
        return reference
    expires = (
        ack_expires_at.astimezone(_zone(timezone)).strftime("%a %d %b %H:%M %Z")
        if ack_expires_at
        else ""
    )
    return f"\nAcknowledge (one tap, valid until {expires}):\n{ack_url}\n{reference}"


def render_page(template: str, **context: Any) -> str:
    """One of the small HTML pages of the one-click acknowledgement (autoescaped)."""
    return _environment().get_template(template).render(**context)
