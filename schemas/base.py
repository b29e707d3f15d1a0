"""Base class, registry and shared field types of the event contract.

Every event is the JSON ``data`` of a CloudEvents 1.0 message in Kafka binary mode: ``ce_type`` is
the model's ``event_type``, ``ce_subject`` and the Kafka key are the aggregate id named by
``subject_field``. Models are strict (unknown fields are rejected) and immutable, and they never
carry restricted detail: only ids, releasable fields and keyed fingerprints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from schemas.topics import ALL_TOPICS

__all__ = [
    "EVENT_MODELS",
    "AreaCode",
    "ContractModel",
    "DuplicateEventType",
    "EventData",
    "Fingerprint",
    "Language",
    "MsgType",
    "PolicyAnnotation",
    "ReasonCode",
    "ReleasableLabel",
    "ReleasableText",
    "SortedUnique",
    "Status",
    "UnknownEventType",
    "VersionRef",
    "check_references",
    "is_drill",
    "model_for",
    "models_for_topic",
    "parse_event",
    "parse_version_ref",
    "version_ref",
]

Status = Literal["Actual", "Exercise", "Test"]
"""CAP-style status: ``Exercise`` and ``Test`` are drills, marked DRILL and never made public."""

MsgType = Literal["Alert", "Update", "Cancel"]
"""CAP ``msgType`` of a versioned aggregate: the first version, a later one, or its cancellation."""

Language = Literal["en", "es"]
"""Bulletin languages (ISO 639-1); feeds map them to ``en-US`` and ``es-US``."""

_UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_VERSION_REF_RE = re.compile(rf"^({_UUID_PATTERN}):([1-9][0-9]*)$")

VersionRef = Annotated[
    str,
    StringConstraints(pattern=_VERSION_REF_RE.pattern),
    Field(description="Reference to an earlier version, '<aggregate id>:<version>'."),
]
Fingerprint = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{32}$"),
    Field(description="Keyed fingerprint (truncated hex HMAC-SHA256) of one restricted term gram."),
]
AreaCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
    Field(description="Gazetteer id of a police district or neighbourhood, e.g. 'district-3'."),
]
ReasonCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$"),
    Field(description="Machine-readable reason code (snake_case), never free text."),
]
ReleasableText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
"""Free text the department may say publicly (a summary, a policy statement)."""
ReleasableLabel = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A short public label, such as an area description or a headline."""

_T = TypeVar("_T")


def _sorted_unique(values: tuple[_T, ...]) -> tuple[_T, ...]:
    # Canonical order makes equal sets serialise identically, so retries hash and dedupe alike.
    return tuple(sorted(set(values)))  # type: ignore[type-var]


SortedUnique = AfterValidator(_sorted_unique)
"""Annotate a ``tuple[...]`` field with this to store it sorted and without duplicates."""


def is_drill(status: Status) -> bool:
    """Return True for ``Exercise`` and ``Test``: drills flow end to end but are never public."""
    return status != "Actual"


def version_ref(aggregate_id: UUID, version: int) -> str:
    """Format the reference to one version of a notice or bulletin, '<id>:<version>'."""
    if version < 1:
        raise ValueError(f"version must be >= 1, got {version}")
    return f"{aggregate_id}:{version}"


def parse_version_ref(ref: str) -> tuple[UUID, int]:
    """Split a '<id>:<version>' reference into its aggregate id and version."""
    match = _VERSION_REF_RE.fullmatch(ref)
    if match is None:
        raise ValueError(f"not a version reference: {ref!r}")
    return UUID(match.group(1)), int(match.group(2))


def check_references(
    references: Iterable[str], *, aggregate_id: UUID, version: int, same_aggregate: bool
) -> None:
    """Raise ValueError unless every reference points to an earlier version.

    With ``same_aggregate`` every reference must name ``aggregate_id``; otherwise references to
    other aggregates are allowed and only a reference to this aggregate must be earlier.
    """
    for ref in references:
        ref_id, ref_version = parse_version_ref(ref)
        if ref_id != aggregate_id:
            if same_aggregate:
                raise ValueError(f"reference {ref} names another aggregate than {aggregate_id}")
            continue
        if ref_version >= version:
            raise ValueError(f"reference {ref} is not earlier than version {version}")


class UnknownEventType(KeyError):
    """No event model is registered for this ``ce_type``."""

    def __init__(self, event_type: str) -> None:
        super().__init__(event_type)
        self.event_type = event_type

    def __str__(self) -> str:
        known = ", ".join(sorted(EVENT_MODELS))
        return f"unknown event type {self.event_type!r}; known: {known}"


class DuplicateEventType(TypeError):
    """Two event models claim the same ``event_type``."""


class ContractModel(BaseModel):
    """Strict, immutable base for every model on a topic, including nested value objects."""

    model_config = ConfigDict(extra="forbid", frozen=True)


EVENT_MODELS: dict[str, type[EventData]] = {}
"""Every concrete event model by its ``event_type`` (``ce_type``), filled as modules import."""


class EventData(ContractModel):
    """The ``data`` of one CloudEvent; concrete subclasses set the three ClassVars.

    A subclass that defines ``event_type`` in its own body is registered in ``EVENT_MODELS``;
    intermediate bases that only share fields leave it out and stay unregistered.
    """

    event_type: ClassVar[str]
    topic: ClassVar[str]
    subject_field: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Pydantic's hook runs after the fields are built (plain __init_subclass__ runs before),
        # so the subject field can be checked against the real field set.
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            return
        existing = EVENT_MODELS.get(cls.event_type)
        if existing is not None and _qualified(existing) != _qualified(cls):
            raise DuplicateEventType(
                f"{cls.__qualname__} and {existing.__qualname__} both claim {cls.event_type!r}"
            )
        if cls.topic not in ALL_TOPICS:
            raise TypeError(f"{cls.__qualname__}.topic {cls.topic!r} is not a known topic")
        if cls.subject_field not in cls.model_fields:
            raise TypeError(f"{cls.__qualname__}.subject_field {cls.subject_field!r} is no field")
        EVENT_MODELS[cls.event_type] = cls

    def subject(self) -> str:
        """The aggregate id this event belongs to: the ``ce_subject`` header."""
        return str(getattr(self, self.subject_field))

    def key(self) -> bytes:
        """The Kafka message key: the aggregate id, so one aggregate stays on one partition."""
        return self.subject().encode("utf-8")


def _qualified(model: type[EventData]) -> str:
    # A module imported twice re-creates its classes; that is the same model, not a duplicate.
    return f"{model.__module__}.{model.__qualname__}"


def model_for(event_type: str) -> type[EventData]:
    """Return the model registered for ``event_type`` or raise ``UnknownEventType``."""
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def models_for_topic(topic: str) -> tuple[type[EventData], ...]:
    """Return the models published on ``topic``, sorted by event type."""
    return tuple(
        EVENT_MODELS[name] for name in sorted(EVENT_MODELS) if EVENT_MODELS[name].topic == topic
    )


def parse_event(event_type: str, data: bytes | str) -> EventData:
    """Validate a message's JSON ``data`` against the model for its ``ce_type``."""
    return model_for(event_type).model_validate_json(data)


class PolicyAnnotation(ContractModel):
    """A statement from the department's written policy attached to a notice.

    No restricted detail: policy text is public by design.
    """

    code: ReasonCode = Field(description="Stable id of the policy rule, e.g. 'no_worksite_raids'.")
    text: ReleasableText = Field(description="The policy statement shown to the SPOC.")
