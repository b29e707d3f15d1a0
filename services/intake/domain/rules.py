"""Pure rules of a field-office notice: lifecycle, versions, digests, fingerprints.

Nothing here does I/O, so every rule unit-tests without a database or a broker.

Lifecycle (CAP msgType in brackets)::

    received [Alert, v1] -> updated [Update, v2..n]* -> cancelled [Cancel] | expired

`cancelled` and `expired` are terminal. Restricted detail of a terminal notice is
purged once the retention period has passed; the record and its audit trail stay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal
from uuid import UUID

from schemas.base import MsgType, version_ref
from schemas.fingerprints import (
    STOPWORDS,
    fingerprint,
    fingerprint_key_id,
    fingerprint_words,
    tokens,
)
from services.intake.domain.records import NoticeState, Operation, StoredIdempotencyKey

__all__ = [
    "TERMINAL_STATES",
    "CancelOutcome",
    "IntakeConflict",
    "IntakeNotFound",
    "RestrictedDetail",
    "RestrictedTermInReleasable",
    "RevisionOutcome",
    "SignatureRejected",
    "cancel_outcome",
    "canonical_json",
    "check_idempotency_key",
    "check_releasable",
    "check_releasable_words",
    "content_digest",
    "expiry_due",
    "fingerprint_key_id",
    "free_text_fingerprints",
    "identifying_terms",
    "msg_type_for",
    "purge_due",
    "references_for",
    "restricted_fingerprints",
    "revision_outcome",
    "sensitive_values",
    "source_key",
]

TERMINAL_STATES: frozenset[NoticeState] = frozenset({"cancelled", "expired"})


# --- errors -------------------------------------------------------------------


class IntakeNotFound(Exception):
    """The notice does not exist, or the caller may not know that it does."""


class IntakeConflict(Exception):
    """The request conflicts with what is recorded; `code` is a stable problem slug."""

    def __init__(self, code: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extensions = extensions


class RestrictedTermInReleasable(Exception):
    """A releasable field repeats a restricted term of the same notice; `fields` names them.

    Deliberately carries no term: the answer must not confirm what was matched.
    """

    def __init__(self, fields: tuple[str, ...]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


class SignatureRejected(Exception):
    """A request's `Aviso-Signature` is missing, invalid or already used; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- keyed digests -------------------------------------------------------------
# All use the shared fingerprint key with a distinct prefix, so a digest made for one
# purpose can never equal one made for another (or a term fingerprint on a topic).


def _keyed(key: bytes, purpose: bytes, message: bytes) -> str:
    return hmac.new(key, purpose + message, hashlib.sha256).hexdigest()


def source_key(key: bytes, field_office_id: str) -> str:
    """The keyed hash that stands for a field office in the database (ownership, uniqueness)."""
    return _keyed(key, b"aviso-intake-source-v1.", field_office_id.encode("utf-8"))


# `json.dumps` with these options builds this encoder on every call (~2 us of its ~10; a
# submission makes two canonical forms: its content's digest and its sealed detail). The
# encoder keeps no state between calls, so one serves every request.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value, whatever order its keys arrived in."""
    return _CANONICAL.encode(value).encode()


def content_digest(key: bytes, content: Mapping[str, Any]) -> str:
    """Keyed digest of submitted content: equal content, equal digest; reveals nothing."""
    # Keyed rather than a plain hash: restricted content has little entropy (a name, an
    # address) and a plain hash stored beside it could be confirmed by guessing.
    return _keyed(key, b"aviso-intake-content-v1.", canonical_json(content))


# --- restricted detail ------------------------------------------------------------


@dataclass(frozen=True)
class RestrictedDetail:
    """Everything about a notice that identifies a person, place, vehicle or its source.

    Held in plaintext only in memory while a request handles it; stored sealed.
    """

    field_office_id: str
    field_office_name: str
    agent_name: str
    recorded_by: str
    agent_phone: str | None = None
    agent_email: str | None = None
    names: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    vehicles: tuple[str, ...] = ()
    exact_locations: tuple[str, ...] = ()
    free_text: str | None = None

    def to_json(self) -> bytes:
        """Serialise for sealing."""
        # Its fields by name, as `asdict` gives them, without `asdict`'s deep copy of
        # each value (strings and tuples of strings here): ~1 % of a submission's CPU.
        return canonical_json({name: getattr(self, name) for name in _DETAIL_FIELDS})

    @classmethod
    def from_json(cls, raw: bytes) -> RestrictedDetail:
        """Rebuild from `to_json` output."""
        data = json.loads(raw)
        for name in ("names", "addresses", "vehicles", "exact_locations"):
            data[name] = tuple(data.get(name) or ())
        return cls(**data)

    def values(self) -> list[str]:
        """Every restricted string, for log scrubbing while the request handles them."""
        single = [
            self.field_office_id,
            self.field_office_name,
            self.agent_name,
            self.recorded_by,
            self.agent_phone,
            self.agent_email,
            self.free_text,
        ]
        return [v for v in (*single, *self.terms()) if v]

    def terms(self) -> tuple[str, ...]:
        """The listed terms: names, addresses, vehicles and exact locations."""
        return (*self.names, *self.addresses, *self.vehicles, *self.exact_locations)

    @cached_property
    def identifying_words(self) -> tuple[list[str], ...]:
        """`identifying_terms`, each split into its normalised words (`tokens`).

        Worked out once a detail: the releasable check and the fingerprints both need them
        (a submission had each term normalised twice). Not a field: equality, `to_json`
        and the sealed detail are as before.
        """
        return tuple(tokens(term) for term in identifying_terms(self))

    def matter(self) -> dict[str, Any]:
        """What the field office said (not who recorded it): compared to detect a change."""
        return {name: getattr(self, name) for name in _DETAIL_FIELDS if name != "recorded_by"}


_DETAIL_FIELDS = tuple(field.name for field in fields(RestrictedDetail))


def _is_weak(word: str) -> bool:
    # Mirrors schemas.fingerprints: a word too common to identify anything by itself.
    return len(word) < 3 or word.isdigit() or word in STOPWORDS


def free_text_fingerprints(key: bytes, text: str) -> set[str]:
    """Fingerprints of the 2-3 word phrases of free text that hold two identifying words.

    Free text is prose, not a term: fingerprinting its single words would block every
    bulletin that says "operation" or "morning". A phrase with two strong words ("red
    pickup", "behind the church") is what a leak of the agent's words looks like, and
    rumor_control's `find_leaks` checks every 1-3 word run of a draft, so it matches.
    """
    words = tokens(text)
    # Each word judged once, not once per phrase it is in (profiled: ~80 Python calls of a
    # submission's ~1,500 went to judging the same words again).
    strong = [not _is_weak(word) for word in words]
    grams: set[str] = set()
    for start in range(len(words) - 1):
        pair = strong[start] + strong[start + 1]
        for size in (2, 3):
            stop = start + size
            if stop > len(words) or pair + (size == 3 and strong[start + 2]) < 2:
                continue
            grams.add(" ".join(words[start:stop]))
            grams.add("".join(words[start:stop]))
    return {fingerprint(key, gram) for gram in grams}


def identifying_terms(detail: RestrictedDetail) -> list[str]:
    """The restricted terms that identify a target or the agent (fingerprinted, and never
    allowed in a releasable field)."""
    terms: list[str] = [*detail.terms(), detail.agent_name]
    if detail.agent_phone:
        terms.append(detail.agent_phone)
    if detail.agent_email:
        # The local part names the agent; the domain (e.g. ice.dhs.gov) names an agency
        # every bulletin may mention.
        terms.append(detail.agent_email.rsplit("@", 1)[0])
    # Not included: the field office's id and name (a public institution a bulletin may
    # name) and who recorded the notice (department staff, not a target).
    return terms


def restricted_fingerprints(key: bytes, detail: RestrictedDetail) -> tuple[str, ...]:
    """Sorted fingerprints of every restricted term of a version (never the terms)."""
    prints = fingerprint_words(key, detail.identifying_words)
    if detail.free_text:
        prints |= free_text_fingerprints(key, detail.free_text)
    return tuple(sorted(prints))


def _matchable(words: list[str]) -> bool:
    # A term made only of weak words ("de la", "12") identifies nothing; a long number (a
    # phone) does, though each of its groups is weak alone.
    digits = "".join(words)
    return not all(map(_is_weak, words)) or (digits.isdigit() and len(digits) >= 7)


def _contains_term(text_words: list[str], term_words: list[str]) -> bool:
    """Whether the term's words occur in order in the text, spaced or run together."""
    size = len(term_words)
    for start in range(len(text_words) - size + 1):
        if text_words[start : start + size] == term_words:
            return True
    # "ABC 123" written "abc123" (or "ab c123"): compare runs with their spaces removed.
    joined = "".join(term_words)
    for start in range(len(text_words)):
        run = ""
        for word in text_words[start:]:
            run += word
            if run == joined:
                return True
            if len(run) >= len(joined) or not joined.startswith(run):
                break
    return False


def _contains_any(text_words: list[str], wanted: list[list[str]]) -> bool:
    # Either way a term matches, its words run together appear in the text's words run
    # together: one substring search rules out most terms before the word-by-word scan.
    text_run = "".join(text_words)
    return any("".join(words) in text_run and _contains_term(text_words, words) for words in wanted)


def check_releasable(releasable: Mapping[str, str | None], terms: Iterable[str]) -> None:
    """Refuse a releasable field that repeats a restricted term of the same notice.

    Compared after normalisation (case, accents, spacing and punctuation never matter), word
    for word, so "Ana" in a summary is not matched by a restricted "Anaheim Street".
    Raises RestrictedTermInReleasable naming the fields, never the term.
    """
    check_releasable_words(releasable, map(tokens, terms))


def check_releasable_words(
    releasable: Mapping[str, str | None], terms_words: Iterable[list[str]]
) -> None:
    """`check_releasable` with the terms already split into their `tokens`."""
    wanted: list[list[str]] = []
    for words in terms_words:
        if not words or not _matchable(words):
            continue
        wanted.append(words)
        digits = "".join(words)
        if digits.isdigit():
            # A phone number is written with or without its country and area code.
            wanted.extend([digits[-n:]] for n in (10, 7) if len(digits) > n)
    if not wanted:
        return
    fields = tuple(
        name
        for name, text in releasable.items()
        if text and _contains_any(tokens(text), wanted)  # each field normalised once
    )
    if fields:
        raise RestrictedTermInReleasable(fields)


# --- versions and lifecycle -----------------------------------------------------


def msg_type_for(version: int, *, cancel: bool = False) -> MsgType:
    """CAP msgType of a version: the first is the Alert, later ones Update or Cancel."""
    if cancel:
        return "Cancel"
    return "Alert" if version == 1 else "Update"


def references_for(notice_id: UUID, version: int) -> tuple[str, ...]:
    """CAP references of `version`: every earlier version of the notice, oldest first."""
    return tuple(version_ref(notice_id, earlier) for earlier in range(1, version))


def _check_open(state: NoticeState) -> None:
    if state in TERMINAL_STATES:
        raise IntakeConflict(
            f"notice-{state}",
            f"The notice is {state}; it can no longer change.",
            state=state,
        )


def _check_version(current_version: int, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != current_version:
        raise IntakeConflict(
            "version-mismatch",
            f"The notice is at version {current_version}, not {expected_version}.",
            current_version=current_version,
        )


RevisionOutcome = Literal["revise", "unchanged"]


def revision_outcome(
    state: NoticeState,
    *,
    current_digest: str | None,
    digest: str,
    current_version: int,
    expected_version: int | None,
) -> RevisionOutcome:
    """Record a new version, or recognise a retry of the content already current.

    A retry of an update that went through finds its own content current; answering
    it as done (rather than as a version mismatch) is what makes updates idempotent
    without an Idempotency-Key.
    """
    _check_open(state)
    if current_digest is not None and hmac.compare_digest(current_digest, digest):
        return "unchanged"
    _check_version(current_version, expected_version)
    return "revise"


CancelOutcome = Literal["cancel", "already_cancelled"]


def cancel_outcome(
    state: NoticeState,
    *,
    current_reason: str | None,
    reason: str,
    current_version: int,
    expected_version: int | None,
) -> CancelOutcome:
    """Cancel now, or recognise a retry of the cancellation already recorded."""
    if state == "cancelled":
        if current_reason == reason:
            return "already_cancelled"
        raise IntakeConflict(
            "notice-cancelled",
            "The notice was already cancelled for another reason.",
            state=state,
            cancel_reason=current_reason,
        )
    _check_open(state)
    _check_version(current_version, expected_version)
    return "cancel"


def check_idempotency_key(
    stored: StoredIdempotencyKey | None,
    *,
    operation: Operation,
    notice_id: str | None,
    digest: str,
) -> bool:
    """True when the request repeats the one the key was used for; False for a new key.

    Raises IntakeConflict when the key was used for a different request.
    """
    if stored is None:
        return False
    same = (
        stored.operation == operation
        and (notice_id is None or stored.notice_id == notice_id)
        and hmac.compare_digest(stored.content_digest, digest)
    )
    if not same:
        raise IntakeConflict(
            "idempotency-key-reused",
            "This Idempotency-Key was already used for a different request.",
        )
    return True


def expiry_due(
    *, state: NoticeState, window_end: datetime, now: datetime, grace: timedelta
) -> bool:
    """Whether an open notice's window ended more than `grace` ago."""
    return state not in TERMINAL_STATES and window_end + grace <= now


def purge_due(
    *,
    state: NoticeState,
    closed_at: datetime | None,
    purged_at: datetime | None,
    now: datetime,
    retention: timedelta,
) -> bool:
    """Whether a closed notice's restricted detail has been kept as long as allowed."""
    return (
        state in TERMINAL_STATES
        and closed_at is not None
        and purged_at is None
        and closed_at + retention <= now
    )


def sensitive_values(details: Iterable[RestrictedDetail]) -> list[str]:
    """All restricted strings of several versions."""
    return [value for detail in details for value in detail.values()]
