"""Redaction of restricted detail: restricted keys, registered values, leaky text.

`redact_restricted` is the last processor before anything renders (see setup.py), so
a restricted value cannot reach a log line by any route that we control.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from structlog.typing import EventDict, WrappedLogger

from services.common.logging.held_values import PLAIN_CHARACTERS, SensitiveValues

__all__ = [
    "REDACTED",
    "RESTRICTED_KEYS",
    "add_restricted_keys",
    "forget_sensitive_value",
    "forget_sensitive_values",
    "holding_sensitive_values",
    "is_restricted_key",
    "redact_restricted",
    "register_sensitive_value",
    "register_sensitive_values",
    "scrub_text",
]

REDACTED = "[REDACTED]"

# Normalised key names (snake_case, lower) whose values never reach a log line.
# A key is restricted when it equals one of these or ends in "_" + one of these
# (`agent_phone` via "phone", `x_api_key` via "api_key"), or starts with
# "restricted_". Bare `name` is deliberately absent: service, topic and field
# office names are what operators need to read.
RESTRICTED_KEYS: set[str] = {
    # restricted detail of a notice (BRIEF: person, address, vehicle, exact target)
    "restricted",
    "restricted_details",
    "names",
    "person_name",
    "agent_name",
    "target_name",
    "full_name",
    "first_name",
    "last_name",
    "given_name",
    "family_name",
    "phone",
    "phone_number",
    "email",
    "addresses",
    "address",
    "exact_location",
    "exact_locations",
    "location",
    "locations",
    "vehicle",
    "vehicles",
    "plate",
    "plates",
    "license_plate",
    "free_text",
    "notes",
    "raw_body",
    "request_body",
    # credentials
    "password",
    "passphrase",
    "secret",
    "secrets",
    "token",
    "authorization",
    "api_key",
    "cookie",
    "signature",
    "private_key",
    "encryption_key",
}

_RESTRICTED_PREFIX = "restricted_"
_RESTRICTED_TRAILING = "_restricted"

# Keys structlog's ProcessorFormatter uses to carry the LogRecord; they must pass
# through untouched or the formatter breaks (they are removed before rendering).
_PROCESSOR_META_KEYS = frozenset({"_record", "_from_structlog"})

# Deeper structures than this are not logged at all: a runaway (or cyclic)
# structure must not stall logging, and it must not slip through unredacted.
_MAX_DEPTH = 24

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")

# Text-level scrubbers for free-form strings (messages, exception text). Each is a
# (pattern, replacement) pair applied in order.
_TEXT_SCRUBBERS: tuple[tuple[re.Pattern[str], str], ...] = (
    # pydantic v2 error lines end "[type=..., input_value=<repr>, input_type=...]".
    # The greedy `.*` stops at the *last* ", input_type=" on the line so a repr
    # that itself contains that text cannot end the match early; a line without
    # input_type (truncated or unusual) is redacted to its end.
    (re.compile(r"input_value=.*(?=, input_type=)|input_value=.*"), f"input_value={REDACTED}"),
    # SQLAlchemy StatementError text carries the bound parameters on one line.
    (re.compile(r"\[parameters: [^\n]*"), f"[parameters: {REDACTED}]"),
    # Bearer credentials and Aviso API tokens quoted in text (e.g. echoed headers).
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{REDACTED}"),
    (re.compile(r"\bavs_[A-Za-z0-9_-]{16,}"), REDACTED),
    # One-click links carry a signed token in the query string; uvicorn's access
    # log prints the full path, and the token would let a log reader act.
    (
        re.compile(r"(?i)([?&](?:token|access_token|sig|signature|api_key)=)[^&\s\"']+"),
        rf"\g<1>{REDACTED}",
    ),
    # The SMS gateway's URLs carry phone numbers, texts and credentials in the query
    # string: its reply callbacks (uvicorn's access log prints them) and sendsms itself
    # (httpx logs every request it makes at info level).
    (
        re.compile(r"(?i)([?&](?:sender|receiver|text|key|to|password|username|reply)=)[^&\s\"']+"),
        rf"\g<1>{REDACTED}",
    ),
)


# Every scrubber above needs one of these in the text; most log strings (ids, states,
# event names) hold none, and one search spares them the six substitutions.
_MAY_NEED_SCRUBBING = re.compile(r"input_value=|\[parameters: |(?i:bearer)|avs_|[?&]")


def _may_need_pattern_scrubbing(text: str) -> bool:
    """What `_MAY_NEED_SCRUBBING.search(text)` answers, found with str searches.

    The regex cannot skip ahead to a likely first character (its case-insensitive
    branch), so it tries every position: ~15 us for a line's 300 characters against ~1.
    Over ASCII, lower-casing finds what `(?i:bearer)` does; other text asks the regex.
    """
    if not text.isascii():
        return _MAY_NEED_SCRUBBING.search(text) is not None
    return (
        "?" in text
        or "&" in text
        or "avs_" in text
        or "input_value=" in text
        or "[parameters: " in text
        or "bearer" in text.lower()
    )


def _normalize_key(key: str) -> str:
    """Turn `agentName`, `X-Api-Key` or `Agent Phone` into snake_case for matching."""
    return _NON_ALNUM.sub("_", _CAMEL_BOUNDARY.sub("_", key).lower()).strip("_")


def is_restricted_key(key: str) -> bool:
    """Tell whether a field name is restricted, whatever its case or separators."""
    # Every field of every line asks: the answer per key is kept (bounded; forgotten
    # whenever the restricted set changes size, also when changed directly).
    size = len(RESTRICTED_KEYS)
    answers = _key_answers.answers if _key_answers.size == size else _key_answers.for_size(size)
    known = answers.get(key)
    if known is None:
        known = _decide_restricted_key(key)
        if len(answers) >= _KEY_ANSWERS_MAX:
            answers.clear()
        answers[key] = known
    return known


_KEY_ANSWERS_MAX = 4096


@dataclasses.dataclass
class _KeyAnswers:
    size: int = -1
    answers: dict[str, bool] = dataclasses.field(default_factory=dict)

    def for_size(self, size: int) -> dict[str, bool]:
        if size != self.size:
            self.answers = {}
            self.size = size
        return self.answers


_key_answers = _KeyAnswers()


def _decide_restricted_key(key: str) -> bool:
    normalized = _normalize_key(key)
    if normalized.startswith(_RESTRICTED_PREFIX) or normalized.endswith(_RESTRICTED_TRAILING):
        return True
    if normalized in RESTRICTED_KEYS:
        return True
    # Suffix match on whole "_"-separated segments, so `agent_phone` matches
    # "phone" but `microphone` does not.
    parts = normalized.split("_")
    return any("_".join(parts[i:]) in RESTRICTED_KEYS for i in range(1, len(parts)))


def add_restricted_keys(*keys: str) -> None:
    """Extend the restricted key set (normalised the same way as incoming keys)."""
    for key in keys:
        normalized = _normalize_key(key)
        if normalized:
            RESTRICTED_KEYS.add(normalized)


_SENSITIVE_VALUES_MAX = 10_000
# Shorter values would shred ordinary words in every line ("Li" in "Listening");
# the key-based redaction remains the first line of defence for them.
_SENSITIVE_VALUE_MIN_LENGTH = 3
_sensitive_values = SensitiveValues(_SENSITIVE_VALUES_MAX)


def register_sensitive_value(value: str) -> None:
    """Scrub exact occurrences of `value` (3+ chars) from log text until forgotten."""
    register_sensitive_values((value,))


def register_sensitive_values(values: Iterable[str]) -> None:
    """`register_sensitive_value` for each of `values`, in one change of the registry (a
    request's dozen values: the held list is rebuilt once, not once per value)."""
    _sensitive_values.register_all(
        value for value in _each(values) if len(value.strip()) >= _SENSITIVE_VALUE_MIN_LENGTH
    )


class holding_sensitive_values:  # lower case: it replaced a function of that name
    """Scrub `values` (each of 3+ chars) from log text while the block runs.

    What `register_sensitive_values` then `forget_sensitive_values` do, for a block: the
    values are set aside as one group and sorted into the registry only if a line written
    meanwhile may hold one (most blocks, a request's, write none).

    A class, not a `@contextmanager` generator: every submission enters one, and the
    generator's frame, its wrapper object and their `next` calls cost more than the hold.
    The values are held on entry, as the generator held them.
    """

    __slots__ = ("_token", "_values")

    def __init__(self, values: Iterable[str]) -> None:
        self._values = [
            value for value in _each(values) if len(value.strip()) >= _SENSITIVE_VALUE_MIN_LENGTH
        ]
        self._token: int | None = None

    def __enter__(self) -> None:
        self._token = _sensitive_values.hold(self._values)

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _sensitive_values.release(token)


def forget_sensitive_value(value: str) -> None:
    """Drop one registration of `value` (the value stays scrubbed while others hold it)."""
    _sensitive_values.forget_all((value,))


def forget_sensitive_values(values: Iterable[str]) -> None:
    """`forget_sensitive_value` for each of `values`, in one change of the registry."""
    _sensitive_values.forget_all(_each(values))


def _each(values: Iterable[str]) -> Iterable[str]:
    # A lone string is an iterable of strings too: held character by character, it would
    # scrub every letter of every line and leave the value itself unheld.
    if isinstance(values, str):
        raise TypeError("pass a collection of values, not one string")
    return values


def scrub_text(text: str) -> str:
    """Remove registered sensitive values and known leaky patterns from free text."""
    if _may_hold_a_value(text, _sensitive_values):
        text = _replace_held(text, _sensitive_values.folded().values)
    if not _may_need_pattern_scrubbing(text):
        return text
    for pattern, replacement in _TEXT_SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


def _may_hold_a_value(text: str, registry: SensitiveValues) -> bool:
    """False only when no held value is inside `text` (so replacing them changes nothing).

    Every string field of every line asks, and with a few hundred values held (intake at
    c64) asking each value was ~9 us a field. A value with a character that `text` lacks
    cannot be inside it: a text of plain characters alone (most fields: ids, timestamps,
    names of things) is asked only for the plain values, a handful; any other text, or
    one holding a plain value, gets the whole replacement, value by value, as before.
    The values of pending groups (`SensitiveValues.hold`) are asked the same way, where
    they are; the replacement then folds them in first (`folded`).
    """
    # `pending` before `held`: a group folded meanwhile is in `held` by then (see `_fold`).
    pending = registry.pending
    held = registry.held
    if not held.values and not pending:
        return False
    if not PLAIN_CHARACTERS.issuperset(text):
        return True
    # Loops, not any(...): a generator's turn costs about twice as much.
    for value in held.plain:
        if value in text:
            return True
    for group in pending:
        for value in group.plain:
            if value in text:
                return True
    return False


def _replace_held(text: str, values: tuple[str, ...]) -> str:
    # Value by value, longest first, each on the text the ones before it left: what an
    # operator reads is defined by this loop (a property test holds the filter above to it).
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _redact_value(value: Any, depth: int) -> Any:
    """Return `value` with restricted keys, sensitive values and leaky text removed."""
    if depth > _MAX_DEPTH:
        return "[TRUNCATED]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return scrub_text(bytes(value).decode("utf-8", errors="backslashreplace"))
    if isinstance(value, Mapping):
        return _redact_mapping(value, depth + 1)
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_item(item, depth + 1) for item in value]
    # Objects the JSON renderer would repr() are flattened here, before rendering,
    # so their content passes through the same key and text rules.
    try:
        if isinstance(value, BaseModel):
            return _redact_value(value.model_dump(mode="json"), depth + 1)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _redact_value(dataclasses.asdict(value), depth + 1)
    except Exception:  # a log call must never raise; fall back to repr
        return scrub_text(repr(value))
    if isinstance(value, enum.Enum):
        return _redact_value(value.value, depth + 1)
    if isinstance(value, dt.datetime | dt.date | dt.time | uuid.UUID | Decimal | Path):
        return str(value)
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    return scrub_text(repr(value))


def _redact_item(item: Any, depth: int) -> Any:
    """Redact a list element; a (name, value) pair such as an ASGI header is a field."""
    if (
        isinstance(item, tuple | list)
        and len(item) == 2
        and isinstance(item[0], str | bytes)
        and is_restricted_key(
            item[0].decode("latin-1") if isinstance(item[0], bytes) else item[0],
        )
    ):
        return [_redact_value(item[0], depth), REDACTED]
    return _redact_value(item, depth)


def _redact_mapping(mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
    redacted: dict[Any, Any] = {}
    for key, value in mapping.items():
        if isinstance(key, str):
            if is_restricted_key(key):
                redacted[scrub_text(key)] = REDACTED
                continue
            redacted[scrub_text(key)] = _redact_value(value, depth)
        else:
            redacted[key] = _redact_value(value, depth)
    return redacted


_PLAIN_SCALARS = (bool, int, float, type(None))

# Joins a line's text fields for the line's one search (see `redact_restricted`). A
# plain character, so a line of plain fields is plain when joined; a held value or a
# pattern found across two fields costs a field-by-field scrub, never a miss.
_FIELD_SEPARATOR = "/"


def redact_restricted(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace restricted fields and scrub text at any depth."""
    # Every line passes here, and most of its fields are ids, names of things and
    # numbers: those are decided inline (the same answers `_redact_value` gives), the
    # rest goes the whole way. The key answers are read inline too (a call per field).
    answers = _key_answers.answers if _key_answers.size == len(RESTRICTED_KEYS) else {}
    text_keys: list[str] = []
    texts: list[str] = []
    for key, value in list(event_dict.items()):
        if key in _PROCESSOR_META_KEYS:
            continue
        restricted = answers.get(key)
        if restricted is None:
            restricted = is_restricted_key(key)
        if restricted:
            event_dict[key] = REDACTED
        elif type(value) in _PLAIN_SCALARS:
            continue
        elif type(value) is str:
            text_keys.append(key)
            texts.append(value)
        else:
            event_dict[key] = _redact_value(value, 0)
    if texts and _line_may_need_scrubbing(_FIELD_SEPARATOR.join(texts)):
        for key, value in zip(text_keys, texts, strict=True):
            event_dict[key] = scrub_text(value)
    return event_dict


def _line_may_need_scrubbing(joined: str) -> bool:
    """False only when `scrub_text` would return every field joined here unchanged.

    One search per line instead of one per text field: a line's dozen or so (the time
    stamp, level, logger, event, ids, names of things) rarely hold anything to scrub.
    """
    if _may_hold_a_value(joined, _sensitive_values):
        return True
    return _may_need_pattern_scrubbing(joined)
