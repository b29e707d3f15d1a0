"""The SPOC's alert inbox, live: the page, its list as a fragment, and a server-sent event
stream that pushes the list whenever it changes.

The stream polls router's `GET /v1/alerts` server-side with the person's own token, so
router keeps deciding what they may see, and a revoked or expired session ends the stream
(router answers 401; the page reloads into the sign-in form). A stream lasts a few minutes
and the browser reconnects by itself: each reconnect checks the session again. Without
EventSource the page's script polls the fragment; without script the page reloads itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from services.console.api import ApiProblem
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, age_minutes, page_html, render, viewer

__all__ = ["inbox_events", "inbox_router", "sse_event"]

Me = Annotated[Viewer, Depends(viewer)]
# Long enough to be cheap, short enough that a session ended elsewhere is noticed soon.
_STREAM_LIFETIME_S = 300.0


def sse_event(event: str, data: str) -> str:
    """One server-sent event; every line of `data` is its own `data:` field."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


async def inbox_items(deps: ConsoleDeps, me: Viewer) -> list[dict[str, Any]]:
    """The person's alerts from router: open ones first, newest first within each group."""
    listed = await deps.api.call(
        "GET", "router", "/v1/alerts", token=me.token, params={"limit": 50}
    )
    now = deps.clock()
    items: list[dict[str, Any]] = listed["items"]
    for item in items:
        item["age_min"] = age_minutes(item["triggered_at"], now)
    return sorted(items, key=lambda a: (not a["needs_acknowledgement"], a["age_min"]))


async def inbox_events(
    request: Request, deps: ConsoleDeps, me: Viewer, *, lifetime_s: float = _STREAM_LIFETIME_S
) -> AsyncIterator[str]:
    """`inbox` events with the list's HTML whenever it changed; `signin` once router refuses."""
    interval = deps.settings.console_refresh_s
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime_s
    last: str | None = None
    yield f"retry: {int(interval * 1000)}\n\n"
    while loop.time() < deadline and not await request.is_disconnected():
        try:
            html: str | None = page_html(
                request, "_alert_list.html.j2", alerts=await inbox_items(deps, me)
            )
        except ApiProblem as problem:
            if problem.status in (401, 403):
                yield sse_event("signin", "/signin")
                return
            html = None  # router busy for a moment: keep the stream, ask again next time
        if html is not None and html != last:
            last = html
            yield sse_event("inbox", html)
        else:
            yield ": nothing new\n\n"  # a comment keeps proxies from closing an idle stream
        await asyncio.sleep(interval)


def inbox_router(deps: ConsoleDeps) -> APIRouter:
    """The inbox page, its fragment and its event stream."""
    router = APIRouter(tags=["alerts"])
    _page_route(router, deps)
    _fragment_route(router, deps)
    _events_route(router, deps)
    return router


def _page_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/alerts", include_in_schema=False)
    async def inbox(request: Request, me: Me) -> Response:
        return render(request, "alerts.html.j2", alerts=await inbox_items(deps, me))


def _fragment_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/alerts/inbox", include_in_schema=False)
    async def inbox_fragment(request: Request, me: Me) -> Response:
        # The list alone, for the script's poll when the browser has no EventSource.
        return render(request, "_alert_list.html.j2", alerts=await inbox_items(deps, me))


def _events_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/alerts/events", include_in_schema=False)
    async def inbox_stream(request: Request, me: Me) -> Response:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            inbox_events(request, deps, me), media_type="text/event-stream", headers=headers
        )
