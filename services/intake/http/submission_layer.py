"""`POST /v1/notices` reached without Starlette's and FastAPI's routing when it is plain.

A plain submission is answered by `PlainSubmissionRoute.plain_answer` without FastAPI's
dependency solving (plain_submission.py). Reaching that answer still cost the router's
walk over every route (FastAPI's included-router contexts and their scope bookkeeping),
the route's request-response wrapper with its two exit stacks, and one more Request:
about a tenth of intake's samples at 64 clients (fifteenth round). This layer, the
innermost of the app's own middlewares, takes the one request that matters there (`POST`
on the submission path) straight to that answer; everything else, and any request the
answer does not take, goes on to FastAPI untouched.

What stays the same: the middlewares outside it (request and correlation ids, the body
guard, metrics, the request's log line, the catch-all problem), the route recorded in the
scope (the metrics' and the log line's `http_route`), and the problem an exception
becomes: the endpoint's exceptions go through Starlette's `ExceptionMiddleware` with the
same handlers FastAPI gives its own, and any other escapes to the catch-all as before.
The route is the one FastAPI's router picks for `POST` on the path, found once; where
that is not a `PlainSubmissionRoute` with a plain answer, every request falls through.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import iter_route_contexts
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake.http.plain_submission import PlainAnswer, PlainSubmissionRoute

__all__ = ["PlainSubmissionLayer"]

_UNRESOLVED: Any = object()


class PlainSubmissionLayer:
    """Answer a plain `POST path` directly; pass every other request on to `app`."""

    def __init__(self, app: ASGIApp, *, path: str) -> None:
        self.app = app
        self.path = path
        self._route: PlainSubmissionRoute | None = _UNRESOLVED
        # Set with the route: its plain answer, and the app's exception handlers for what
        # that answer raises (only then: on every request they cost a Request, two
        # closures and a send wrapper).
        self._plain: PlainAnswer | None = None
        self._guarded: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        route = self._route
        if route is _UNRESOLVED:
            route = self._route = self._resolve(scope["app"])
        if route is None or self._guarded is None:
            await self.app(scope, receive, send)
            return
        # What the router records for the route it chose: the metrics' and log's label.
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        plain = self._plain
        assert plain is not None
        request = Request(scope, receive, send)
        try:
            response = await plain(request)
        except Exception as exc:  # the app's handlers answer it, as they would the route's
            scope[_RAISED] = exc
            await self._guarded(scope, receive, send)
            return
        if response is None:
            # FastAPI answers it (a 401, 403, 415, 422, a keyed or signed submission),
            # from the body already read, with its own routing, handlers and exit stacks.
            for key in ("route", "endpoint", "path_params"):
                scope.pop(key, None)
            await self.app(scope, _replay(request, receive), send)
            return
        await response(scope, receive, send)

    def _resolve(self, app: FastAPI) -> PlainSubmissionRoute | None:
        """The route FastAPI's router picks for `POST path`, if it answers plain ones."""
        probe: Scope = {"type": "http", "method": "POST", "path": self.path, "root_path": ""}
        for context in iter_route_contexts(app.router.routes):
            match, _ = context.matches(probe)
            if match is Match.FULL:
                route = context.original_route
                plain = route.plain_answer if isinstance(route, PlainSubmissionRoute) else None
                if isinstance(route, PlainSubmissionRoute) and plain is not None:
                    # The handlers FastAPI hands its own ExceptionMiddleware (500 and
                    # Exception are ServerErrorMiddleware's there, and the catch-all's).
                    handlers = {
                        key: handler
                        for key, handler in app.exception_handlers.items()
                        if key not in (500, Exception)
                    }
                    self._plain = plain
                    self._guarded = ExceptionMiddleware(
                        _raise_again, handlers=handlers, debug=app.debug
                    )
                    return route
                return None
        return None


_RAISED = "aviso.plain_submission_raised"


async def _raise_again(scope: Scope, receive: Receive, send: Send) -> None:
    """Raise what the plain answer raised, inside the app's exception handlers."""
    raise scope.pop(_RAISED)


def _replay(request: Request, receive: Receive) -> Receive:
    """A receive that gives the body `request` read (if it read one), then `receive`'s."""
    body: bytes | None = getattr(request, "_body", None)
    if body is None:
        return receive
    pending = [body]

    async def replay() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replay
