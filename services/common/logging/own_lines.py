"""Our own structlog lines handed to the JSON handler directly when no one else would see them.

A line logged through structlog runs the processor chain (context, level, time stamp,
redaction), then goes to the stdlib logger: `Logger.info` makes a `LogRecord` (thirty
attributes, the time again, a file name split twice), `handle` and `callHandlers` walk the
logger's ancestors, `Handler.handle` filters and locks, and the formatter copies the event
dict and renders it. Where the process's only handler is the JSON lines' handler that
`configure_logging` installed, and nothing on the way (a filter, a handler of another
logger, a logger that does not propagate, a custom record factory) could see or change
the record, all of that ends in the same text: the event dict, keys ordered, as one JSON
object. So the chain's last processor renders it then and hands the text to that handler
(`JsonLinesHandler.emit_line`, under the handler's lock, with the level that decides an
immediate write), and ends the call as structlog lets a processor end one (`DropEvent`).
Anywhere else (a test's capture handler, the console's renderer, a second handler, a
filter) the line takes the stdlib's whole way, as before. Measured at c64 in intake's
plain submission (docs/performance.md, twenty-third round).

Stdlib records from libraries (uvicorn, aiokafka, SQLAlchemy) are not ours and always
take the whole way; so do lines whose rendering raises, so the handler reports them as
it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from services.common.logging.writer import JsonLinesHandler

__all__ = ["direct_lines_to", "write_or_wrap"]

# structlog's method names (what reaches a processor as `method_name`) -> the record's level.
_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


@dataclass
class _Route:
    """The handler our lines may go to directly, and how its formatter renders one."""

    handler: JsonLinesHandler | None = None
    render: Callable[[WrappedLogger, str, EventDict], Any] | None = None


_route = _Route()


def direct_lines_to(
    handler: JsonLinesHandler | None,
    render: Callable[[WrappedLogger, str, EventDict], Any] | None = None,
) -> None:
    """Let our lines go to `handler` directly (None: never), rendered by `render` (what its
    formatter does with a record's event dict)."""
    _route.handler = handler
    _route.render = render if handler is not None else None


def write_or_wrap(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
    """structlog's last processor: the line written directly where only our handler would
    see it (then the call ends: `DropEvent`), else `wrap_for_formatter`'s record arguments."""
    handler, render = _route.handler, _route.render
    if handler is not None and render is not None and _plain_record_path(type(logger)):
        levelno = _LEVELS.get(method_name)
        if levelno is not None and _only_handler_sees(logger, handler, levelno):
            line = _rendered(render, logger, method_name, event_dict)
            if line is not None:
                handler.emit_line(line, levelno)
                raise structlog.DropEvent
    return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, method_name, event_dict)


def _only_handler_sees(logger: logging.Logger, handler: logging.Handler, levelno: int) -> bool:
    """Whether a record of `logger` at `levelno` would reach `handler` and nothing else, with
    nothing on the way to look at it (what `Logger.handle` and `callHandlers` would do)."""
    if logger.disabled or logger.filters or logging.getLogRecordFactory() is not _RECORD:
        return False
    current = logger
    parent = current.parent
    while parent is not None:  # up to the root
        if current.handlers or not current.propagate:
            return False
        current, parent = parent, parent.parent
    handlers = current.handlers
    return (
        len(handlers) == 1
        and handlers[0] is handler
        and not handler.filters
        and levelno >= handler.level
    )


_RECORD: Callable[..., logging.LogRecord] = logging.LogRecord
_RECORD_PATH = ("_log", "makeRecord", "handle", "callHandlers")
_plain_classes: dict[type, bool] = {}


def _plain_record_path(cls: type) -> bool:
    """A logger class that makes and hands on a record as `logging.Logger` does (structlog's
    factory makes its loggers of a subclass that only finds the caller its own way)."""
    plain = _plain_classes.get(cls)
    if plain is None:
        plain = issubclass(cls, logging.Logger) and all(
            getattr(cls, name) is getattr(logging.Logger, name) for name in _RECORD_PATH
        )
        _plain_classes[cls] = plain
    return plain


def _rendered(
    render: Callable[[WrappedLogger, str, EventDict], Any],
    logger: logging.Logger,
    method_name: str,
    event_dict: EventDict,
) -> str | None:
    """The line as the handler's formatter would render it; None where that raises (the
    record's way then reports it as before)."""
    try:
        line = render(logger, method_name, event_dict)
    except Exception:
        return None
    return line if isinstance(line, str) else None
