"""What every rumor_control use case receives besides its unit of work: built once at start.

The department, gazetteer and templates are read when the deps are built, so a bad file
stops the start, not the first bulletin.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.delivery import DeliveryOrder
from services.common.delivery.handset import HandsetPolicy
from services.common.delivery.registry import SmsTransport
from services.common.signing import make_link_token
from services.rumor_control.community.numbers import NumberVault
from services.rumor_control.config import PACKAGE_DIR, RumorControlSettings
from services.rumor_control.department import DepartmentConfig, load_department
from services.rumor_control.domain import LANGUAGES, fingerprint_key_id
from services.rumor_control.drafting import Drafter
from services.rumor_control.gazetteer import Gazetteer, load_gazetteer
from services.rumor_control.guardrails import GuardrailContext
from services.rumor_control.unit_of_work import RumorControlTransaction, RumorControlUnitOfWork

__all__ = [
    "BulletinDeliveries",
    "Clock",
    "RumorControlDeps",
    "department_of",
    "public_base_url",
    "receipt_link",
    "utc_now",
]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, in UTC (tests inject their own)."""
    return datetime.now(UTC)


def _nothing() -> None:
    """No delivery engine to wake (unit tests)."""


class BulletinDeliveries(Protocol):
    """Where publishing hands its deliveries (the delivery engine; a fake in unit tests)."""

    async def accept_many(self, session: AsyncSession, orders: Sequence[DeliveryOrder]) -> int:
        """Record `orders` in the caller's transaction; how many ids were new."""
        ...


def department_of(settings: RumorControlSettings) -> DepartmentConfig:
    """The department file the settings name (or the bundled one), validated, in the
    department's time zone (the setting router reads too)."""
    loaded = load_department(settings.rumor_department_file or PACKAGE_DIR / "department.yaml")
    return loaded.in_zone(settings.department_timezone)


def public_base_url(settings: RumorControlSettings) -> str:
    """Where people reach this service (receipt links, feed links)."""
    base = settings.public_base_url
    if base:
        return base.rstrip("/")
    return f"http://{settings.http_host}:{settings.rumor_control_port}"


def receipt_link(
    settings: RumorControlSettings,
    *,
    at: datetime,
    bulletin_id: uuid.UUID,
    version: int,
    recipient_id: uuid.UUID,
) -> str:
    """A signed link, valid from `at` for the configured days, to confirm receipt."""
    ttl = settings.rumor_receipt_link_ttl_days * 86400
    claims: dict[str, str | int] = {
        "k": "receipt",
        "b": str(bulletin_id),
        "v": version,
        "r": str(recipient_id),
    }
    secret = settings.link_secret.get_secret_value().encode("utf-8")
    token = make_link_token(secret, claims, expires_at=int(at.timestamp()) + ttl)
    # In the query string, where the log scrubber redacts `token=` from access logs.
    return f"{public_base_url(settings)}/v1/receipts?token={token}"


@dataclass(frozen=True)
class RumorControlDeps:
    """Configuration and collaborators of the rumor_control use cases."""

    settings: RumorControlSettings
    department: DepartmentConfig
    gazetteer: Gazetteer
    drafter: Drafter
    source: str
    unit_of_work: Callable[[], RumorControlTransaction]
    delivery: BulletinDeliveries
    clock: Clock = utc_now
    # Sends the replies to subscribers' keywords (None: no SMS gateway, no replies).
    replies: SmsTransport | None = None
    # Makes the delivery engine look for due records now (after a commit made one due).
    wake_delivery: Callable[[], None] = _nothing

    @classmethod
    def build(
        cls,
        settings: RumorControlSettings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        source: str,
        delivery: BulletinDeliveries,
        department: DepartmentConfig | None = None,
        clock: Clock = utc_now,
        replies: SmsTransport | None = None,
        wake_delivery: Callable[[], None] = _nothing,
    ) -> RumorControlDeps:
        """Load the department (unless given), gazetteer and templates named by the settings."""
        department = department or department_of(settings)
        gazetteer = load_gazetteer(settings.rumor_gazetteer_file or PACKAGE_DIR / "gazetteer.yaml")
        return cls(
            settings=settings,
            department=department,
            gazetteer=gazetteer,
            drafter=Drafter(PACKAGE_DIR / "templates", department),
            source=source,
            unit_of_work=lambda: RumorControlUnitOfWork(sessions, source=source),
            delivery=delivery,
            clock=clock,
            replies=replies,
            wake_delivery=wake_delivery,
        )

    @property
    def fingerprint_key(self) -> bytes:
        """The HMAC key intake fingerprints restricted terms with."""
        return self.settings.fingerprint_key.get_secret_value().encode("utf-8")

    @property
    def handset_policy(self) -> HandsetPolicy:
        """What a handset failure report leads to (`kannel_handset_*`)."""
        return HandsetPolicy.from_settings(self.settings)

    @property
    def numbers(self) -> NumberVault:
        """Seals, opens and hashes subscribers' phone numbers."""
        return NumberVault.from_settings(self.settings)

    @property
    def link_secret(self) -> bytes:
        """The key receipt links are signed with."""
        return self.settings.link_secret.get_secret_value().encode("utf-8")

    @property
    def public_base_url(self) -> str:
        """Where people reach this service (receipt links, feed links)."""
        return public_base_url(self.settings)

    def guardrails(
        self, fingerprints: frozenset[str], key_ids: frozenset[str] = frozenset()
    ) -> GuardrailContext:
        """The guardrails' view of the configuration plus a draft's notice fingerprints."""
        config = self.department
        settings = self.settings
        return GuardrailContext(
            fingerprint_key=self.fingerprint_key,
            fingerprints=fingerprints,
            foreign_key_ids=frozenset(key_ids - {fingerprint_key_id(self.fingerprint_key)}),
            policy_statement={lang: config.policy_statement(lang) for lang in LANGUAGES},
            phone_line=config.phone_line,
            partner_names={
                lang: tuple(partner.name(lang) for partner in config.partners) for lang in LANGUAGES
            },
            gazetteer=self.gazetteer,
            allowed_phones=config.allowed_phones(),
            sms_max_segments=settings.rumor_sms_max_segments,
            radio_words_per_minute=settings.rumor_radio_words_per_minute,
            radio_max_seconds=settings.rumor_radio_max_seconds,
        )

    def receipt_url(self, bulletin_id: uuid.UUID, version: int, recipient_id: uuid.UUID) -> str:
        """A signed, expiring link a recipient opens to confirm they received a version."""
        return receipt_link(
            self.settings,
            at=self.clock(),
            bulletin_id=bulletin_id,
            version=version,
            recipient_id=recipient_id,
        )
