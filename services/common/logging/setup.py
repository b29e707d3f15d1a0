"""structlog, configured once per process: the processor chain, handlers and adapters.

Every line the process writes - our own structlog calls and stdlib records from
uvicorn, FastStream, aiokafka and SQLAlchemy - goes through the same processor
chain and ends as one JSON object per line (or a readable console line on a
TTY). The chain always ends in `redact_restricted` before anything renders.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from services.common.logging.own_lines import direct_lines_to, write_or_wrap
from services.common.logging.redaction import redact_restricted
from services.common.logging.writer import JsonLinesHandler

__all__ = [
    "FastStreamLogger",
    "RequestLine",
    "bind_context",
    "bound",
    "clear_context",
    "configure_logging",
    "faststream_logger",
    "get_logger",
    "info_on_request_line",
    "request_line",
]

# --- processor chain ---------------------------------------------------------

_FORMAT = Literal["auto", "json", "console"]


@dataclasses.dataclass
class _State:
    configured: bool = False
    service: str = "aviso"
    handlers: tuple[logging.Handler, ...] = ()


_state = _State()


def _add_service(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Stamp every line with the service (read from module state, see below)."""
    # Read at call time rather than baked into a closure: loggers are cached on
    # first use, and a cached chain must follow a later `force=True` reconfigure.
    event_dict["service"] = _state.service
    return event_dict


def _drop_color_message(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Drop uvicorn's ANSI-coloured duplicate of the message, which ExtraAdder copies."""
    event_dict.pop("color_message", None)
    return event_dict


_LEADING_KEYS = ("ts", "level", "service", "logger", "event")


def _order_keys(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Put the keys operators scan for first, so JSON lines read left to right."""
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


_timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts")

# Shared by structlog calls and stdlib records. Redaction runs last, before the
# event dict is handed to any stdlib handler, so even handlers we did not install
# (pytest's caplog, a library's own handler) only ever see redacted data.
_COMMON_CHAIN: tuple[Processor, ...] = (
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    _timestamper,
    _add_service,
    structlog.processors.StackInfoRenderer(),
    # Plain-text tracebacks, not dict_tracebacks: the dict form captures frame
    # locals by default, and locals are exactly where decrypted detail lives.
    structlog.processors.format_exc_info,
    redact_restricted,
)

_STRUCTLOG_CHAIN: list[Processor] = [
    structlog.stdlib.filter_by_level,
    *_COMMON_CHAIN,
    # `ProcessorFormatter.wrap_for_formatter`, or the line written directly where only
    # our JSON handler would see its record (own_lines.py).
    write_or_wrap,
]

_FOREIGN_CHAIN: list[Processor] = [
    structlog.stdlib.ExtraAdder(),
    _drop_color_message,
    *_COMMON_CHAIN,
]

# Libraries whose own handlers or propagate=False would bypass the root handler.
_ROUTED_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "fastapi",
    "faststream",
    "faststream.access",
    "aiokafka",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.engine.Engine",
    "sqlalchemy.pool",
    "alembic",
    "aiosqlite",
    "asyncio",
    "httpx",
)


class _CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Write to whatever `sys.stderr` is at emit time (pytest swaps it per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        # Ignored on purpose: the target is always the current sys.stderr.
        pass


# ensure_ascii=False keeps Spanish text readable in the log file. One encoder for every
# line: `json.dumps` with any option builds a new encoder at each call (a few
# microseconds a line); its output is the same, byte for byte.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _render_json(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
    """The line as one JSON object (what `json.dumps(..., ensure_ascii=False)` wrote)."""
    return _JSON_ENCODER.encode(event_dict)


def _json_renderer() -> Processor:
    return _render_json


class _LineFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, without its copy of each record our own loggers make.

    `ProcessorFormatter.format` copies each record (a second `LogRecord`) and its event
    dict, adds meta keys its first processor removes, and passes the text through
    `logging.Formatter` unchanged (`%(message)s`; our records carry no exception or stack:
    the chain rendered them). A record from our chain (`_logger` and `_name` attached by
    `wrap_for_formatter`) is rendered here from a copy of its event dict: the same text,
    the record untouched, ~10 % of a line. A stdlib record takes the whole way.
    """

    def __init__(self, renderer: Processor) -> None:
        remove_meta = structlog.stdlib.ProcessorFormatter.remove_processors_meta
        processors = [remove_meta, _order_keys, renderer]
        super().__init__(foreign_pre_chain=_FOREIGN_CHAIN, processors=processors)
        self._line_processors = (_order_keys, renderer)

    def format(self, record: logging.LogRecord) -> str:
        event_dict = record.msg
        name = getattr(record, "_name", None)
        if type(event_dict) is not dict or name is None or getattr(record, "_logger", None) is None:
            return super().format(record)
        line = self.render(record.__dict__["_logger"], name, event_dict)
        # As ProcessorFormatter: the last processor renders text (else its own way).
        return line if isinstance(line, str) else super().format(record)

    def render(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> Any:
        """One of our lines as this formatter renders it: keys ordered, then the renderer.

        The processors change the dict they get, so they get a copy: a record keeps its
        own, and a line written without one (own_lines.py) is left whole for the
        record's way if rendering fails.
        """
        line: Any = dict(event_dict)
        for processor in self._line_processors:
            line = processor(logger, name, line)
        return line


def _parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    parsed = logging.getLevelName(level.strip().upper())
    if not isinstance(parsed, int):
        raise ValueError(f"unknown log level: {level!r}")
    return parsed


def configure_logging(
    service: str,
    *,
    level: str | int = "INFO",
    fmt: _FORMAT = "auto",
    log_file: Path | None = None,
    stream: TextIO | None = None,
    force: bool = False,
) -> None:
    """Configure structlog and the stdlib root logger once; later calls need `force`."""
    if _state.configured and not force:
        return
    numeric_level = _parse_level(level)

    handlers = _handlers(fmt=fmt, log_file=log_file, stream=stream)
    _lean_records()
    _install_on_root(handlers, numeric_level)
    _quiet_chatty_libraries(numeric_level)

    _state.service = service
    _state.handlers = tuple(handlers)
    _direct_own_lines(handlers)
    structlog.configure(
        processors=_STRUCTLOG_CHAIN,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        # Safe with force=True: the chain is fixed and reads its state at call time.
        cache_logger_on_first_use=True,
    )
    _state.configured = True


def _handlers(
    *, fmt: _FORMAT, log_file: Path | None, stream: TextIO | None
) -> list[logging.Handler]:
    """The terminal handler (console or JSON) and, when asked, the JSON log file.

    When both outputs are JSON one handler renders each line once and writes it to both:
    a line costs one pass through the formatter's chain and one JSON encoding, not two.
    """
    target: TextIO = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not _isatty(target))
    if use_json:
        both = JsonLinesHandler(stream, log_file)
        both.setFormatter(_LineFormatter(_json_renderer()))
        return [both]
    # stderr, not stdout: CLI commands print their results (a new token) on stdout.
    console: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStderrHandler()
    )
    console.setFormatter(_LineFormatter(structlog.dev.ConsoleRenderer(colors=_isatty(target))))
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        file_handler = JsonLinesHandler(None, log_file, to_stream=False)
        file_handler.setFormatter(_LineFormatter(_json_renderer()))
        handlers.append(file_handler)
    return handlers


def _direct_own_lines(handlers: list[logging.Handler]) -> None:
    """Our lines straight to the one JSON handler, when it is the only one (own_lines.py)."""
    (only,) = handlers if len(handlers) == 1 else (None,)
    formatter = only.formatter if isinstance(only, JsonLinesHandler) else None
    if isinstance(only, JsonLinesHandler) and isinstance(formatter, _LineFormatter):
        direct_lines_to(only, formatter.render)
    else:
        direct_lines_to(None)


def _lean_records() -> None:
    """Leave out of every stdlib record what no line of ours renders (the logging HOWTO's
    "Optimization"): the caller's file and line (a walk up the stack per line), the
    thread's and the process's names and ids. The chain renders the event dict, the
    logger's name and the level; structlog finds a line's own frame by itself when a
    call asks for `stack_info`."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def _install_on_root(handlers: list[logging.Handler], level: int) -> None:
    """Make `handlers` the root logger's only ones (ours replaced, foreign ones removed)."""
    root = logging.getLogger()
    for old in _state.handlers:
        root.removeHandler(old)
        old.close()
    # Anything else on root (basicConfig, a library's setup) would write the same
    # record a second time in another shape, and without our redaction.
    for old in list(root.handlers):
        if not _is_foreign_test_handler(old):
            root.removeHandler(old)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
        routed.setLevel(logging.NOTSET)


class _RetriedLookupIsAWarning(logging.Filter):
    """aiokafka logs a failed group-coordinator look-up at ERROR and tries again after its
    backoff. A retriable failure (the broker still loading its group coordinator, as on a
    fresh cluster's first start) is a WARNING: nothing is lost, the consumer joins once it
    answers."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if record.levelno == logging.ERROR and getattr(error, "retriable", False):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_RETRIED_LOOKUP = _RetriedLookupIsAWarning()


def _quiet_chatty_libraries(level: int) -> None:
    # aiokafka logs every rebalance and connection at INFO; SQLAlchemy at INFO
    # prints SQL with bound parameters. Access lines stay at INFO on purpose.
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    if _RETRIED_LOOKUP not in coordinator.filters:
        coordinator.addFilter(_RETRIED_LOOKUP)
    logging.getLogger("sqlalchemy").setLevel(max(level, logging.WARNING))
    # aiosqlite logs every statement with its parameters at DEBUG: never let that through.
    logging.getLogger("aiosqlite").setLevel(max(level, logging.WARNING))
    # httpx logs every request's URL at INFO: Kannel's sendsms URL holds the number, the
    # text and the gateway's credentials (scrubbed by the redaction processor, but better
    # never written), and one line per webhook is noise beside delivery.delivered.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    logging.getLogger("uvicorn.access").setLevel(logging.INFO)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _is_foreign_test_handler(handler: logging.Handler) -> bool:
    """Keep pytest's capture handlers so `caplog` keeps working in tests."""
    return type(handler).__module__.startswith("_pytest")


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger backed by the stdlib logger `name`."""
    if name is None:
        return structlog.stdlib.get_logger()
    return structlog.stdlib.get_logger(name)


# --- FastStream ---------------------------------------------------------------

# FastStream passes its own context as `extra`; these names would clash with the
# fields our chain owns.
_RESERVED_FIELDS = frozenset({"event", "level", "ts", "service", "logger", "exc_info"})

# FastStream's subscriber supervisor says this at INFO whenever a subscriber's task ends,
# which every stop does; it says nothing an operator acts on, so it is DEBUG here. A task
# that failed is reported apart, at ERROR.
_TASK_CALLBACK = re.compile(r"callback for \S+ is being executed\.\.\.")


class FastStreamLogger:
    """Adapter satisfying FastStream's `LoggerProto`: its `extra` become log fields."""

    def __init__(self, name: str = "faststream") -> None:
        self._name = name
        self._logger = get_logger(name)

    def log(
        self,
        level: int,
        msg: Any,
        /,
        *,
        exc_info: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Log `msg` at `level` with FastStream's context (topic, message_id) as fields."""
        fields: dict[str, Any] = {}
        for key, value in (extra or {}).items():
            if value in ("", None):
                continue  # FastStream fills unknown context with "" (e.g. group_id)
            fields[f"faststream_{key}" if key in _RESERVED_FIELDS else key] = value
        if exc_info:
            fields["exc_info"] = exc_info
        text = str(msg)
        if level == logging.INFO and _TASK_CALLBACK.fullmatch(text):
            level = logging.DEBUG
        self._logger.log(level, text, **fields)

    def setLevel(self, level: int) -> None:  # camelCase: FastStream looks up this name
        """Apply the broker's `log_level` to the underlying stdlib logger."""
        logging.getLogger(self._name).setLevel(level)


def faststream_logger() -> FastStreamLogger:
    """Return the logger to hand to `KafkaBroker(logger=...)` and `FastStream(logger=...)`."""
    return FastStreamLogger()


# --- context -----------------------------------------------------------------


def bind_context(**kv: Any) -> None:
    """Bind fields (correlation_id, message_id, topic, request_id) to this context."""
    structlog.contextvars.bind_contextvars(**kv)


def clear_context() -> None:
    """Remove every field bound in this context."""
    structlog.contextvars.clear_contextvars()


@contextmanager
def bound(**kv: Any) -> Iterator[None]:
    """Bind fields for the duration of a block, restoring earlier values after it."""
    with structlog.contextvars.bound_contextvars(**kv):
        yield


# --- the request's one line ----------------------------------------------------


@dataclasses.dataclass
class RequestLine:
    """What the app said about the HTTP request being answered, to log with its outcome.

    The HTTP edge (services/common/http.py) opens one per request and writes it when the
    request is answered, with the method, route, status and duration: one line per
    request, however many layers had something to say about it (see
    `info_on_request_line`).
    """

    logger: structlog.stdlib.BoundLogger | None = None
    event: str | None = None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)


_request_line: ContextVar[RequestLine | None] = ContextVar("aviso_request_line", default=None)


class request_line:  # lower case: it replaced a function of that name
    """Open the line of the request answered in this context (the HTTP edge's job)."""

    # A class, not a `@contextmanager` generator: every request enters one, and the
    # generator's frame and wrapper cost more than the context variable's set and reset.
    __slots__ = ("_token",)

    def __enter__(self) -> RequestLine:
        line = RequestLine()
        self._token = _request_line.set(line)
        return line

    def __exit__(self, *exc_info: object) -> None:
        _request_line.reset(self._token)


def info_on_request_line(logger: structlog.stdlib.BoundLogger, event: str, **fields: Any) -> None:
    """Log `event` at INFO on the line of the HTTP request being answered, if any.

    That line is written once the request is answered, with its status and duration; a
    request carries one such event (a second, or a call outside any request, such as a
    consumer's or the CLI's, is logged at once as usual).
    """
    line = _request_line.get()
    if line is None or line.event is not None:
        logger.info(event, **fields)
        return
    line.logger, line.event, line.fields = logger, event, fields
