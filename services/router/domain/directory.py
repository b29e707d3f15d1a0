"""The directory an admin writes, who holds the SPOC role, and the snapshot frozen on an alert.

Escalation, as data: a policy is an ordered list of steps, each a target (the current
SPOC or a named person) and a wait. The policy and the people it names are *frozen on the
alert* (a snapshot) when it opens, so a directory edit made while an alert is open never
changes who that alert reaches: the record of what was done stays true, as in Grafana
OnCall's escalation snapshot.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, assert_never, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.deliveries import DeliveryChannel

__all__ = [
    "MAX_REPEAT",
    "MAX_STEPS",
    "MAX_WAIT_S",
    "ChannelKind",
    "Channels",
    "Delegation",
    "DirectoryDocument",
    "DirectoryError",
    "DirectorySource",
    "DirectoryVersion",
    "EscalationPolicy",
    "EscalationStep",
    "FrozenModel",
    "FrozenPolicy",
    "FrozenRecipient",
    "FrozenStep",
    "Person",
    "Snapshot",
    "SpocDesignation",
    "directory_digest",
    "holder_of_spoc",
    "parse_directory",
    "snapshot_directory",
    "validate_directory",
]

# The one channel type (schemas.deliveries): a channel added there makes mypy point at
# every match over channels here, in the delivery plan and in the sender registry.
ChannelKind = DeliveryChannel
# Where a stored directory came from: a file is re-applied only when it changed.
DirectorySource = Literal["api", "file", "cli"]

_EMAIL = re.compile(r"^[^@\s<>,;:\"]+@[^@\s<>,;:\"]+\.[^@\s<>,;:\"]+$")
_WEBHOOK = re.compile(r"^https?://[^\s/?#]+(?:[/?#][^\s]*)?$")
# E.164: "+", a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")

MAX_WAIT_S = 24 * 3600
MAX_REPEAT = 10
MAX_STEPS = 20


class FrozenModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- the directory, as written by an admin ---------------------------------------------


class Channels(FrozenModel):
    """Where a person can be reached. `phone` is shown to people, not dialled by Aviso."""

    webhook_url: Annotated[str, Field(max_length=2000)] | None = Field(
        default=None, description="HTTPS endpoint (e.g. a phone push gateway); signed requests."
    )
    email: Annotated[str, Field(max_length=320)] | None = None
    sms: Annotated[str, Field(max_length=16)] | None = Field(
        default=None,
        description=(
            "Mobile number in E.164 form (+15555550100) that Aviso texts; a reply from it "
            "acknowledges. Restricted: served to admins only, never logged or put on a topic."
        ),
    )
    phone: Annotated[str, Field(max_length=40)] | None = Field(
        default=None, description="For humans reading the directory; Aviso does not call it."
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not _WEBHOOK.match(value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("is not an e-mail address")
        return value

    @field_validator("sms")
    @classmethod
    def _sms(cls, value: str | None) -> str | None:
        # The message never quotes the value: a number is restricted data.
        if value is not None and not _E164.match(value):
            raise ValueError("must be an E.164 number: +, country code and number, digits only")
        return value

    def kinds(self) -> tuple[ChannelKind, ...]:
        """The channels this person has an address on, in the channel type's order."""
        return tuple(kind for kind in get_args(DeliveryChannel) if self.address(kind))

    def address(self, kind: ChannelKind) -> str | None:
        """The address of one channel kind (None when the person has none on it)."""
        match kind:
            case "webhook":
                return self.webhook_url
            case "email":
                return self.email
            case "sms":
                return self.sms
            case _:
                assert_never(kind)


class Person(FrozenModel):
    """Someone the router may notify (the SPOC, a deputy, a backup)."""

    id: uuid.UUID
    name: Annotated[str, Field(min_length=1, max_length=200)]
    role: Annotated[str, Field(max_length=200)] = ""
    channels: Channels = Channels()


class Delegation(FrozenModel):
    """While [starts_at, ends_at) lasts, `deputy_id` holds the SPOC role (leave, travel)."""

    deputy_id: uuid.UUID
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Annotated[str, Field(max_length=200)] = ""


class SpocDesignation(FrozenModel):
    """The single point of contact and the windows in which a deputy stands in."""

    person_id: uuid.UUID
    delegations: tuple[Delegation, ...] = ()


class EscalationStep(FrozenModel):
    """Notify `target`, then wait `wait_s` for an acknowledgement before the next step."""

    target: Literal["spoc", "person"] = Field(
        description="spoc: whoever holds the SPOC role when the alert opens; person: person_id."
    )
    person_id: uuid.UUID | None = None
    wait_s: float = Field(gt=0, le=MAX_WAIT_S, description="Seconds to wait after notifying.")


class EscalationPolicy(FrozenModel):
    """Ordered steps, passed through `1 + repeat` times before the alert is exhausted."""

    steps: tuple[EscalationStep, ...] = Field(min_length=1, max_length=MAX_STEPS)
    repeat: int = Field(default=0, ge=0, le=MAX_REPEAT, description="Extra passes.")


class DirectoryDocument(FrozenModel):
    """Everything an admin writes with PUT /v1/directory (or loads from YAML)."""

    people: tuple[Person, ...] = Field(min_length=1)
    spoc: SpocDesignation
    policy: EscalationPolicy


@dataclass(frozen=True)
class DirectoryError:
    """One reason a directory is refused, with the JSON path of what is wrong."""

    path: str
    message: str


def validate_directory(document: DirectoryDocument) -> list[DirectoryError]:
    """Every rule the schema alone cannot express; an empty list means valid."""
    errors: list[DirectoryError] = []
    people: dict[uuid.UUID, Person] = {}
    for index, person in enumerate(document.people):
        if person.id in people:
            errors.append(DirectoryError(f"people[{index}].id", "duplicate person id"))
        people[person.id] = person

    def reachable(person_id: uuid.UUID) -> bool:
        return _reachable(people, person_id)

    spoc = document.spoc
    if spoc.person_id not in people:
        errors.append(DirectoryError("spoc.person_id", "names no person in the directory"))
    elif not reachable(spoc.person_id):
        errors.append(
            DirectoryError("spoc.person_id", "the SPOC has no webhook, e-mail or SMS number")
        )
    errors.extend(_delegation_errors(spoc, people))
    for index, step in enumerate(document.policy.steps):
        path = f"policy.steps[{index}]"
        if step.target == "spoc":
            if step.person_id is not None:
                errors.append(DirectoryError(f"{path}.person_id", "a spoc step names no person"))
            continue
        if step.person_id is None:
            errors.append(DirectoryError(f"{path}.person_id", "a person step needs person_id"))
        elif step.person_id not in people:
            errors.append(DirectoryError(f"{path}.person_id", "names no person in the directory"))
        elif not reachable(step.person_id):
            # A step nobody can receive silently burns its wait while the operation nears.
            errors.append(
                DirectoryError(
                    f"{path}.person_id", "this person has no webhook, e-mail or SMS number"
                )
            )
    if not errors and not any(
        reachable(_target_of(step, spoc.person_id)) for step in document.policy.steps
    ):
        errors.append(DirectoryError("policy", "no step reaches anybody"))
    return errors


def _reachable(people: dict[uuid.UUID, Person], person_id: uuid.UUID) -> bool:
    """Whether `person_id` is in the directory with a channel Aviso can deliver on."""
    person = people.get(person_id)
    return person is not None and bool(person.channels.kinds())


def _delegation_errors(
    spoc: SpocDesignation, people: dict[uuid.UUID, Person]
) -> list[DirectoryError]:
    """Delegation windows: well-formed, to a reachable deputy, never overlapping."""
    errors: list[DirectoryError] = []

    def reachable(person_id: uuid.UUID) -> bool:
        return _reachable(people, person_id)

    windows = sorted(enumerate(spoc.delegations), key=lambda item: item[1].starts_at)
    for index, delegation in windows:
        path = f"spoc.delegations[{index}]"
        if delegation.ends_at <= delegation.starts_at:
            errors.append(DirectoryError(f"{path}.ends_at", "must be after starts_at"))
        if delegation.deputy_id == spoc.person_id:
            errors.append(DirectoryError(f"{path}.deputy_id", "the SPOC cannot deputise for self"))
        elif delegation.deputy_id not in people:
            errors.append(DirectoryError(f"{path}.deputy_id", "names no person in the directory"))
        elif not reachable(delegation.deputy_id):
            errors.append(
                DirectoryError(
                    f"{path}.deputy_id", "the deputy has no webhook, e-mail or SMS number"
                )
            )
    # Overlapping windows would make "who is the SPOC now" ambiguous.
    for (index_a, a), (index_b, b) in itertools.pairwise(windows):
        if b.starts_at < a.ends_at:
            errors.append(
                DirectoryError(
                    f"spoc.delegations[{index_b}]",
                    f"overlaps spoc.delegations[{index_a}]; windows must not overlap",
                )
            )
    return errors


def _target_of(step: EscalationStep, spoc_holder: uuid.UUID) -> uuid.UUID:
    if step.target == "spoc":
        return spoc_holder
    assert step.person_id is not None
    return step.person_id


def directory_digest(document: DirectoryDocument) -> str:
    """A stable hash of the document's content (to tell whether a file changed)."""
    canonical = json.dumps(document.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- delegation ----------------------------------------------------------------


def holder_of_spoc(spoc: SpocDesignation, at: datetime) -> tuple[uuid.UUID, bool]:
    """Who holds the SPOC role at `at`, and whether through a delegation window."""
    for delegation in spoc.delegations:
        # Half-open: at ends_at the SPOC is back, so hand-overs never overlap.
        if delegation.starts_at <= at < delegation.ends_at:
            return delegation.deputy_id, True
    return spoc.person_id, False


# --- the snapshot frozen on an alert ------------------------------------------------


class FrozenRecipient(FrozenModel):
    """A person as the directory described them when the alert opened."""

    person_id: uuid.UUID
    channels: Channels


class FrozenStep(FrozenModel):
    """A policy step with its target resolved to one person."""

    person_id: uuid.UUID
    wait_s: float
    via_spoc: bool = Field(description="Whether the step targeted the SPOC role.")


class FrozenPolicy(FrozenModel):
    """The escalation policy in force when the alert opened."""

    steps: tuple[FrozenStep, ...]
    repeat: int


class Snapshot(FrozenModel):
    """Who held the SPOC role and which policy applied, frozen when the alert opened."""

    directory_version: int
    taken_at: AwareDatetime
    spoc_id: uuid.UUID = Field(description="Who held the SPOC role (the deputy when delegated).")
    designated_spoc_id: uuid.UUID
    delegated: bool
    policy: FrozenPolicy
    recipients: tuple[FrozenRecipient, ...]

    def recipient(self, person_id: uuid.UUID) -> FrozenRecipient | None:
        """The frozen entry of `person_id`, if the alert may reach them."""
        return next((r for r in self.recipients if r.person_id == person_id), None)

    def may_acknowledge(self, person_id: uuid.UUID) -> bool:
        """Anyone the alert may reach may acknowledge it, and nobody else."""
        return self.recipient(person_id) is not None

    def target(self, step: int) -> uuid.UUID:
        """The person step `step` notifies."""
        return self.policy.steps[step].person_id

    def wait(self, step: int) -> timedelta:
        """How long step `step` waits for an acknowledgement."""
        return timedelta(seconds=self.policy.steps[step].wait_s)


def snapshot_directory(document: DirectoryDocument, *, version: int, at: datetime) -> Snapshot:
    """Freeze the SPOC holder at `at`, the policy with every target resolved, and addresses."""
    holder, delegated = holder_of_spoc(document.spoc, at)
    people = {person.id: person for person in document.people}
    steps = tuple(
        FrozenStep(
            person_id=_target_of(step, holder), wait_s=step.wait_s, via_spoc=step.target == "spoc"
        )
        for step in document.policy.steps
    )
    recipient_ids = list(dict.fromkeys([holder, *(step.person_id for step in steps)]))
    recipients = tuple(
        FrozenRecipient(person_id=pid, channels=people[pid].channels)
        for pid in recipient_ids
        if pid in people
    )
    return Snapshot(
        directory_version=version,
        taken_at=at,
        spoc_id=holder,
        designated_spoc_id=document.spoc.person_id,
        delegated=delegated,
        policy=FrozenPolicy(steps=steps, repeat=document.policy.repeat),
        recipients=recipients,
    )


def parse_directory(data: Any) -> DirectoryDocument:
    """Validate raw data (parsed YAML or JSON) as a directory document (schema only)."""
    return DirectoryDocument.model_validate(data)


@dataclass(frozen=True)
class DirectoryVersion:
    """One stored directory; the highest version is the one in force."""

    version: int
    document: DirectoryDocument
    digest: str
    source: DirectorySource
    created_by: str
    created_at: datetime
