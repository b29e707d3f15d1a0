"""The department's configuration: its voice in bulletins and the recipients of bulletins.

Read once at start-up from YAML (see department.yaml). Pydantic validates it so a typo in
a liaison's language or a missing Spanish policy statement stops the service at start, not
when the first bulletin is drafted.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from schemas.base import Language
from schemas.deliveries import DeliveryChannel
from services.common.delivery.sms import is_e164
from services.common.settings import DEFAULT_DEPARTMENT_TIMEZONE

__all__ = [
    "Bilingual",
    "Department",
    "DepartmentConfig",
    "DrillRecipient",
    "Liaison",
    "Partner",
    "RadioDesk",
    "Recipient",
    "load_department",
]


class _Config(BaseModel):
    # No input in validation errors: a liaison's SMS number is restricted data, and the
    # error of a bad file is printed and logged.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class Bilingual(_Config):
    """A text in English and in Spanish."""

    en: str = Field(min_length=1)
    es: str = Field(min_length=1)

    def __call__(self, language: Language) -> str:
        """The text in `language`."""
        return self.en if language == "en" else self.es


class Department(_Config):
    """Who publishes."""

    name: Bilingual
    short_name: Bilingual
    cap_sender: str = Field(min_length=1, pattern=r"^[^\s,<&]+$")
    web: str = Field(min_length=1)
    # The zone is one setting shared with router (AVISO_DEPARTMENT_TIMEZONE), applied when
    # the file is loaded for a service; a file may still name it, and then it must agree.
    timezone: str | None = None


class Partner(_Config):
    """A partner organisation named in every bulletin."""

    id: str
    name: Bilingual


class Recipient(_Config):
    """Someone bulletins are delivered to, by webhook and/or e-mail."""

    id: UUID
    name: str
    language: Language = "es"
    webhook_url: str | None = None
    email: str | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Recipient:
        if not self.channels():
            raise ValueError(f"{self.name}: give a webhook_url, an email or both (or sms)")
        return self

    def channels(self) -> tuple[DeliveryChannel, ...]:
        """The channels configured for this recipient."""
        found: list[DeliveryChannel] = []
        if self.webhook_url:
            found.append("webhook")
        if self.email:
            found.append("email")
        return tuple(found)


class Liaison(Recipient):
    """A community leader or organisation that relays bulletins; also by SMS with `sms`
    (E.164), which is restricted: never logged, on a topic or on the timeline."""

    sms: str | None = Field(default=None, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _e164(cls, data: object) -> object:
        # Checked here, not as a field, so the error names the liaison (a field error only
        # gives its position in the list); never the value. Unquoted in YAML, a number
        # arrives as an int: refused too (its "+" would be lost).
        if isinstance(data, dict) and data.get("sms") is not None:
            number = data["sms"]
            if not isinstance(number, str) or not is_e164(number):
                raise ValueError(
                    f"liaison {data.get('name', data.get('id', '?'))}: sms must be an E.164 "
                    'number in quotes ("+15555550100": +, country code and number)'
                )
        return data

    def channels(self) -> tuple[DeliveryChannel, ...]:
        """The channels configured for this liaison (SMS too when it has a number)."""
        found = super().channels()
        return (*found, "sms") if self.sms else found


class RadioDesk(Recipient):
    """The Spanish-language station's newsroom (always receives Spanish first)."""


class DrillRecipient(Recipient):
    """Someone inside the department who receives drill bulletins (e.g. the outreach unit):
    drills go to them only, never to liaisons, the radio desk or the feeds."""


class DepartmentConfig(_Config):
    """The whole department.yaml."""

    department: Department
    policy_statement: Bilingual
    phone_line: str = Field(min_length=7)
    public_phones: tuple[str, ...] = ()
    partners: tuple[Partner, ...] = Field(min_length=1)
    liaisons: tuple[Liaison, ...] = ()
    radio_desk: RadioDesk | None = None
    drill_audience: tuple[DrillRecipient, ...] = ()
    # Recipients by id: delivery looks one up per message, and a department may list
    # thousands of liaisons.
    _by_id: dict[UUID, Recipient] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> DepartmentConfig:
        ZoneInfo(self.department.timezone or DEFAULT_DEPARTMENT_TIMEZONE)  # fails fast
        ids = [r.id for r in self.recipients()]
        if len(ids) != len(set(ids)):
            raise ValueError("liaison, radio desk and drill audience ids must be unique")
        self._by_id = {r.id: r for r in self.recipients()}
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The department's local time zone (times in bulletins are local)."""
        return ZoneInfo(self.department.timezone or DEFAULT_DEPARTMENT_TIMEZONE)

    def in_zone(self, timezone: str) -> DepartmentConfig:
        """This department in the configured zone; a file naming another zone is refused."""
        named = self.department.timezone
        if named is not None and named != timezone:
            raise ValueError(
                f"the department file names time zone {named} but the department's time "
                f"zone setting is {timezone}; remove it from the file or make them agree"
            )
        department = self.department.model_copy(update={"timezone": timezone})
        return self.model_copy(update={"department": department})

    def community(self) -> tuple[Recipient, ...]:
        """Who receives real bulletins: every liaison and the radio desk."""
        radio: tuple[Recipient, ...] = (self.radio_desk,) if self.radio_desk else ()
        return (*self.liaisons, *radio)

    def audience(self, *, drill: bool) -> tuple[Recipient, ...]:
        """Who receives a bulletin: the drill audience for a drill, else the community."""
        return self.drill_audience if drill else self.community()

    def recipients(self) -> tuple[Recipient, ...]:
        """Every liaison, the radio desk and the drill audience."""
        return (*self.community(), *self.drill_audience)

    def recipient(self, recipient_id: UUID) -> Recipient | None:
        """The liaison, radio desk or drill recipient with this id."""
        return self._by_id.get(recipient_id)

    def channels(self) -> frozenset[DeliveryChannel]:
        """Every channel some recipient is configured on (each needs a sender)."""
        return frozenset(c for recipient in self.recipients() for c in recipient.channels())

    def allowed_phones(self) -> tuple[str, ...]:
        """Numbers a bulletin may print: the phone line and the other public numbers."""
        return (self.phone_line, *self.public_phones)


def load_department(path: Path) -> DepartmentConfig:
    """Read and validate a department YAML file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return DepartmentConfig.model_validate(data)
