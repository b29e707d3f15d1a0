"""Use cases of rumor control. Each owns one transaction and writes its events to the outbox.

HTTP use cases receive the session factory and open their transaction; Kafka use cases
receive the session of the consumer's transaction (which also holds the inbox claim).
Metrics and log lines that announce an effect are emitted after the commit, so a rolled
back transaction never shows up as done.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.alerts import AlertAcknowledged
from schemas.base import Language, Status, is_drill
from schemas.bulletins import (
    BulletinApproved,
    BulletinDrafted,
    BulletinKind,
    BulletinPublished,
    BulletinRejected,
    BulletinRetracted,
    BulletinText,
    LanguageSignoff,
    PublishChannel,
)
from schemas.deliveries import DeliveryPurpose, DeliveryRequested
from schemas.fingerprints import normalize
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.rumors import RumorAssessed, RumorAssessment, RumorChannel, RumorReported
from services.common.db import after_commit
from services.common.delivery import DeliveryError
from services.common.logging import get_logger
from services.common.outbox import enqueue
from services.common.signing import LinkTokenError, make_link_token, read_link_token
from services.rumor_control import repository as repo
from services.rumor_control.adapters import ChannelSender, liaison_text, radio_delivery_text
from services.rumor_control.config import PACKAGE_DIR, RumorControlSettings
from services.rumor_control.department import DepartmentConfig, Recipient, load_department
from services.rumor_control.domain import (
    LANGUAGES,
    Actor,
    NoticeFacts,
    RumorCandidate,
    RumorFacts,
    Suggestion,
    VettingError,
    bulletin_status,
    channels_for,
    check_approval,
    check_editable,
    check_sign_off,
    choose_rumor,
    delivery_id,
    fingerprint_key_id,
    references_for,
    suggest_assessment,
)
from services.rumor_control.drafting import Drafter, TemplateId
from services.rumor_control.gazetteer import Gazetteer, load_gazetteer
from services.rumor_control.guardrails import (
    Finding,
    GuardrailContext,
    Sections,
    blocked_reasons,
    run_all,
)
from services.rumor_control.metrics import (
    BULLETINS_PUBLISHED,
    DELIVERIES,
    GUARDRAIL_BLOCKS,
    RECEIPTS,
    REPORT_TO_BULLETIN_SECONDS,
    RUMOR_REPORTS,
)

__all__ = [
    "BulletinView",
    "Context",
    "InvalidInput",
    "InvalidLink",
    "NewReport",
    "NotFound",
    "ReceiptOutcome",
    "ReportOutcome",
    "RumorView",
    "acknowledge_alert",
    "apply_notice",
    "apply_notice_cancelled",
    "approve",
    "assess_rumor",
    "deliver",
    "edit_bulletin",
    "get_bulletin",
    "get_rumor",
    "list_bulletins",
    "list_rumors",
    "public_entries",
    "record_receipt",
    "reject",
    "report_rumor",
    "retract",
    "sign_off",
    "timeline",
]

log = get_logger(__name__)

Sessions = async_sessionmaker[AsyncSession]


class NotFound(Exception):
    """No rumor or bulletin with that id."""


class InvalidInput(Exception):
    """A request that is well-formed but cannot be applied; `code` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class InvalidLink(Exception):
    """A receipt link that is forged, expired or malformed."""


# -- wiring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What every use case needs besides its session: configuration, read once at start."""

    settings: RumorControlSettings
    department: DepartmentConfig
    gazetteer: Gazetteer
    drafter: Drafter
    source: str

    @classmethod
    def from_settings(cls, settings: RumorControlSettings, *, source: str) -> Context:
        """Load the department, gazetteer and templates named by the settings."""
        department = load_department(
            settings.rumor_department_file or PACKAGE_DIR / "department.yaml"
        )
        gazetteer = load_gazetteer(settings.rumor_gazetteer_file or PACKAGE_DIR / "gazetteer.yaml")
        drafter = Drafter(PACKAGE_DIR / "templates", department)
        return cls(settings, department, gazetteer, drafter, source)

    @property
    def fingerprint_key(self) -> bytes:
        """The HMAC key intake fingerprints restricted terms with."""
        return self.settings.fingerprint_key.get_secret_value().encode("utf-8")

    @property
    def public_base_url(self) -> str:
        """Where people reach this service (receipt links, feed links)."""
        base = self.settings.public_base_url
        if base:
            return base.rstrip("/")
        return f"http://{self.settings.http_host}:{self.settings.rumor_control_port}"

    @property
    def fingerprint_key_id(self) -> str:
        """The id intake gives the same key (see domain.fingerprint_key_id)."""
        return fingerprint_key_id(self.fingerprint_key)

    def guardrails(
        self, fingerprints: frozenset[str], key_ids: frozenset[str] = frozenset()
    ) -> GuardrailContext:
        """The guardrails' view of the configuration plus a draft's notice fingerprints."""
        config = self.department
        settings = self.settings
        return GuardrailContext(
            fingerprint_key=self.fingerprint_key,
            fingerprints=fingerprints,
            foreign_key_ids=frozenset(key_ids - {self.fingerprint_key_id}),
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
        ttl = self.settings.rumor_receipt_link_ttl_days * 86400
        claims: dict[str, str | int] = {
            "k": "receipt",
            "b": str(bulletin_id),
            "v": version,
            "r": str(recipient_id),
        }
        token = make_link_token(
            self.settings.link_secret.get_secret_value().encode("utf-8"),
            claims,
            expires_at=int(time.time()) + ttl,
        )
        # In the query string, where the log scrubber redacts `token=` from access logs.
        return f"{self.public_base_url}/v1/receipts?token={token}"


def _now() -> datetime:
    return datetime.now(UTC)


# -- notices and alerts (Kafka) --------------------------------------------------------------


async def apply_notice(
    *, session: AsyncSession, ctx: Context, notice: NoticeReceived | NoticeUpdated
) -> None:
    """Project a notice version; draft a standby that waited for it; re-check drafts."""
    await repo.lock_notice(session, notice.notice_id)
    await repo.save_notice_version(
        session,
        notice_id=notice.notice_id,
        version=notice.version,
        status=notice.status,
        area=notice.area,
        area_code=notice.area_code,
        window_start=notice.window_start,
        window_end=notice.window_end,
        fingerprints=notice.restricted_fingerprints,
        key_id=notice.fingerprint_key_id,
    )
    if await repo.take_standby_request(session, notice.notice_id):
        await _draft_standby(session, ctx, notice.notice_id)
    elif notice.msg_type == "Update":
        await _refresh_standby(session, ctx, notice.notice_id)
    # A new version may add restricted terms, so drafts that cite the notice are re-checked
    # (approval re-checks too; this keeps what the vetter sees current).
    await _recheck_drafts(session, ctx, notice.notice_id)
    after_commit(
        session,
        lambda: log.info(
            "notice.projected", notice_id=str(notice.notice_id), version=notice.version
        ),
    )


async def apply_notice_cancelled(
    *, session: AsyncSession, ctx: Context, cancelled: NoticeCancelled
) -> None:
    """Mark a notice cancelled: suggestions for rumors about it turn to False."""
    await repo.lock_notice(session, cancelled.notice_id)
    await repo.cancel_notice(
        session,
        notice_id=cancelled.notice_id,
        version=cancelled.version,
        status=cancelled.status,
        at=cancelled.received_at,
    )


async def acknowledge_alert(
    *, session: AsyncSession, ctx: Context, acknowledged: AlertAcknowledged
) -> None:
    """The SPOC acknowledged a notice: draft its standby bulletin, ready if rumors start."""
    await repo.lock_notice(session, acknowledged.notice_id)
    notice = await repo.get_notice(session, acknowledged.notice_id)
    if notice is None or notice.window_start is None:
        # alerts and notices are separate topics: the notice may still be on its way.
        await repo.request_standby(
            session,
            notice_id=acknowledged.notice_id,
            alert_id=acknowledged.alert_id,
            by=acknowledged.acknowledged_by,
        )
        return
    await _draft_standby(session, ctx, acknowledged.notice_id)


def _area_variables(
    ctx: Context, area_code: str | None, fallback: str | None
) -> dict[Language, dict[str, Any]]:
    area = ctx.gazetteer.get(area_code)
    return {
        lang: {
            "area": area.name(lang) if area else fallback,
            "area_ref": area.reference(lang) if area else fallback,
        }
        for lang in LANGUAGES
    }


async def _draft_standby(session: AsyncSession, ctx: Context, notice_id: uuid.UUID) -> None:
    if await repo.standby_for(session, notice_id) is not None:
        return  # one standby per notice, however often it is acknowledged
    notice = await repo.get_notice(session, notice_id)
    if notice is None or notice.cancelled_at is not None:
        return
    slack = timedelta(minutes=ctx.settings.rumor_notice_slack_minutes)
    if notice.window_end is not None and notice.window_end + slack < _now():
        # An operation long over needs no standby: this is a replay of old events (a new
        # deployment reads the topics from the start), not an acknowledgement to act on.
        return
    variables = _area_variables(ctx, notice.area_code, notice.area)
    for lang in LANGUAGES:
        variables[lang].update(drill=is_drill(notice.status), as_of=_now())
    await _create_draft(
        session,
        ctx,
        kind="standby",
        template_id="standby",
        status=notice.status,
        variables=variables,
        notice_ids=(notice_id,),
        rumor_id=None,
        area_code=notice.area_code,
        standby_for_notice=notice_id,
        first_reported_at=None,
        author=None,
    )


async def _refresh_standby(session: AsyncSession, ctx: Context, notice_id: uuid.UUID) -> None:
    """Redraft an untouched standby when its notice changes (a new area, a drill flag).

    Only a draft nobody has edited or signed is redrafted: once a person has worked on the
    text it is theirs, and the guardrails (re-run below and at approval) still protect it.
    """
    bulletin_id = await repo.standby_for(session, notice_id)
    notice = await repo.get_notice(session, notice_id)
    if bulletin_id is None or notice is None:
        return
    view = await _load(session, bulletin_id, for_update=True)
    latest = view.latest
    if latest.state != "drafted" or latest.author_id is not None or latest.signoffs:
        return
    variables = _area_variables(ctx, notice.area_code, notice.area)
    for lang in LANGUAGES:
        variables[lang].update(drill=is_drill(notice.status), as_of=_now())
    texts = ctx.drafter.render_all("standby", variables)
    findings = await _check(
        session, ctx, texts=texts, status=view.bulletin.status, channels=latest.channels,
        notice_ids=view.bulletin.notice_ids,
    )  # fmt: skip
    blocked = blocked_reasons(findings)
    now = _now()
    await repo.update_version(
        session,
        bulletin_id,
        latest.version,
        texts=_texts_json(texts),
        findings=[f.as_dict() for f in findings],
        blocked_reasons=list(blocked),
        revision=latest.revision + 1,
        drafted_at=now,
    )
    await repo.update_bulletin(session, bulletin_id, area_code=notice.area_code)
    await repo.record(
        session,
        aggregate="bulletin",
        aggregate_id=bulletin_id,
        version=latest.version,
        action="redrafted",
        actor=None,
        detail={"notice_id": str(notice_id), "notice_version": notice.version},
    )
    await enqueue(
        session,
        BulletinDrafted(
            bulletin_id=bulletin_id,
            version=latest.version,
            msg_type="Alert",
            references=(),
            status=view.bulletin.status,
            kind="standby",
            notice_ids=view.bulletin.notice_ids,
            languages=LANGUAGES,
            template_id="standby",
            author_id=None,
            blocked_reasons=blocked,
            drafted_at=now,
        ),
        source=ctx.source,
    )
    _count_blocks(session, bulletin_id, blocked)


def _texts_json(texts: Mapping[Language, Sections]) -> dict[str, dict[str, str]]:
    return {
        lang: {
            "headline": t.headline,
            "body": t.body,
            "sms": t.sms,
            "radio": t.radio,
        }
        for lang, t in texts.items()
    }


def _sections(texts: Mapping[str, Mapping[str, str]]) -> dict[Language, Sections]:
    found: dict[Language, Sections] = {}
    for lang in LANGUAGES:
        if lang in texts:
            t = texts[lang]
            found[lang] = Sections(t["headline"], t["body"], t["sms"], t["radio"])
    return found


async def _check(
    session: AsyncSession,
    ctx: Context,
    *,
    texts: Mapping[Language, Sections],
    status: Status,
    channels: Sequence[str],
    notice_ids: Iterable[uuid.UUID],
) -> list[Finding]:
    fingerprints, key_ids = await repo.fingerprints_of(session, notice_ids)
    context = ctx.guardrails(fingerprints, key_ids)
    return run_all(texts, status=status, channels=channels, context=context)


def _count_blocks(session: AsyncSession, bulletin_id: uuid.UUID, blocked: Sequence[str]) -> None:
    def effect() -> None:
        for reason in blocked:
            GUARDRAIL_BLOCKS.labels(reason).inc()
        if blocked:
            log.info("bulletin.blocked", bulletin_id=str(bulletin_id), reasons=list(blocked))

    after_commit(session, effect)


async def _create_draft(
    session: AsyncSession,
    ctx: Context,
    *,
    kind: BulletinKind,
    template_id: TemplateId,
    status: Status,
    variables: Mapping[Language, Mapping[str, Any]],
    notice_ids: Sequence[uuid.UUID],
    rumor_id: uuid.UUID | None,
    area_code: str | None,
    standby_for_notice: uuid.UUID | None,
    first_reported_at: datetime | None,
    author: Actor | None,
) -> uuid.UUID:
    now = _now()
    bulletin_id = uuid.uuid4()
    texts = ctx.drafter.render_all(template_id, variables)
    channels = channels_for(status)
    findings = await _check(
        session, ctx, texts=texts, status=status, channels=channels, notice_ids=notice_ids
    )
    blocked = blocked_reasons(findings)
    await repo.insert_bulletin(
        session,
        bulletin_id=bulletin_id,
        kind=kind,
        status=status,
        template_id=template_id,
        rumor_id=rumor_id,
        notice_ids=notice_ids,
        area_code=area_code,
        standby_for_notice=standby_for_notice,
        first_reported_at=first_reported_at,
        now=now,
    )
    await repo.insert_version(
        session,
        bulletin_id=bulletin_id,
        version=1,
        msg_type="Alert",
        references=(),
        state="drafted",
        texts=_texts_json(texts),
        findings=[f.as_dict() for f in findings],
        blocked_reasons=blocked,
        channels=channels,
        author=author,
        now=now,
    )
    await repo.record(
        session,
        aggregate="bulletin",
        aggregate_id=bulletin_id,
        version=1,
        action="drafted",
        actor=author,
        detail={"template_id": template_id, "kind": kind, "blocked_reasons": list(blocked)},
    )
    await enqueue(
        session,
        BulletinDrafted(
            bulletin_id=bulletin_id,
            version=1,
            msg_type="Alert",
            references=(),
            status=status,
            kind=kind,
            rumor_id=rumor_id,
            notice_ids=tuple(notice_ids),
            languages=LANGUAGES,
            template_id=template_id,
            author_id=None if author is None else author.id,
            blocked_reasons=blocked,
            drafted_at=now,
        ),
        source=ctx.source,
    )
    _count_blocks(session, bulletin_id, blocked)
    after_commit(
        session,
        lambda: log.info(
            "bulletin.drafted",
            bulletin_id=str(bulletin_id),
            kind=kind,
            status=status,
            blocked_reasons=list(blocked),
        ),
    )
    return bulletin_id


async def _recheck_drafts(session: AsyncSession, ctx: Context, notice_id: uuid.UUID) -> None:
    for bulletin, latest in await repo.list_bulletins(session, limit=1000):
        if latest.state != "drafted" or notice_id not in bulletin.notice_ids:
            continue
        findings = await _check(
            session,
            ctx,
            texts=_sections(latest.texts),
            status=bulletin.status,
            channels=latest.channels,
            notice_ids=bulletin.notice_ids,
        )
        blocked = blocked_reasons(findings)
        if blocked != latest.blocked_reasons:
            await repo.update_version(
                session,
                bulletin.bulletin_id,
                latest.version,
                findings=[f.as_dict() for f in findings],
                blocked_reasons=list(blocked),
                signoffs={},
            )
            await repo.record(
                session,
                aggregate="bulletin",
                aggregate_id=bulletin.bulletin_id,
                version=latest.version,
                action="guardrails_rechecked",
                actor=None,
                detail={"notice_id": str(notice_id), "blocked_reasons": list(blocked)},
            )
            _count_blocks(session, bulletin.bulletin_id, blocked)


# -- rumors (HTTP) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewReport:
    """A report as a liaison, the phone line or the radio desk heard it."""

    claim: str
    place: str
    channel: RumorChannel
    organisation: str | None = None
    observed_at: datetime | None = None
    language: str | None = None
    drill: bool = False


@dataclass(frozen=True)
class ReportOutcome:
    """Where a report was filed."""

    report_id: uuid.UUID
    rumor_id: uuid.UUID
    new_rumor: bool
    report_count: int
    area_code: str | None
    area: str | None
    status: Status


async def report_rumor(
    *, sessions: Sessions, ctx: Context, actor: Actor, report: NewReport
) -> ReportOutcome:
    """File a report: join the rumor about the same place and time, or open a new one."""
    now = _now()
    observed = report.observed_at or now
    area = ctx.gazetteer.match(report.place) or ctx.gazetteer.match(report.claim)
    area_code = None if area is None else area.code
    area_name = None if area is None else area.name("en")
    place_key = normalize(report.place)[:200]
    status: Status = "Exercise" if report.drill else "Actual"
    window = timedelta(minutes=ctx.settings.rumor_cluster_window_minutes)
    report_id = uuid.uuid4()
    async with sessions() as session, session.begin():
        candidates = await repo.rumor_candidates(
            session,
            status=status,
            area_code=area_code,
            place_key=place_key,
            observed_at=observed,
            window=window,
        )
        chosen = choose_rumor(
            (
                RumorCandidate(c.rumor_id, c.first_observed_at, c.last_observed_at)
                for c in candidates
            ),
            observed_at=observed,
            window=window,
        )
        if chosen is None:
            rumor_id = uuid.uuid4()
            await repo.insert_rumor(
                session,
                rumor_id=rumor_id,
                status=status,
                area_code=area_code,
                area=area_name,
                place_key=place_key,
                channel=report.channel,
                reported_at=now,
                observed_at=observed,
            )
            rumor = await repo.get_rumor(session, rumor_id)
        else:
            existing = next(c for c in candidates if c.rumor_id == chosen)
            rumor = await repo.add_report_to_rumor(
                session, existing, channel=report.channel, reported_at=now, observed_at=observed
            )
        assert rumor is not None
        await repo.insert_report(
            session,
            repo.ReportRow(
                report_id=report_id,
                rumor_id=rumor.rumor_id,
                claim=report.claim,
                place_as_heard=report.place,
                channel=report.channel,
                organisation=report.organisation,
                language=report.language,
                reporter_name=actor.name,
                observed_at=report.observed_at,
                reported_at=now,
            ),
            reporter_id=actor.id,
        )
        await repo.record(
            session,
            aggregate="rumor",
            aggregate_id=rumor.rumor_id,
            action="reported",
            actor=actor,
            detail={"report_id": str(report_id), "channel": report.channel},
        )
        await enqueue(
            session,
            RumorReported(
                rumor_id=rumor.rumor_id,
                status=status,
                area_code=area_code,
                area=area_name,
                report_id=report_id,
                channel=report.channel,
                channels=tuple(rumor.channels),
                report_count=rumor.report_count,
                first_reported_at=rumor.first_reported_at,
                reported_at=now,
                observed_at=report.observed_at,
            ),
            source=ctx.source,
        )
    RUMOR_REPORTS.labels(report.channel, str(chosen is not None).lower()).inc()
    log.info(
        "rumor.reported",
        rumor_id=str(rumor.rumor_id),
        report_id=str(report_id),
        area_code=area_code,
        report_count=rumor.report_count,
        clustered=chosen is not None,
    )
    return ReportOutcome(
        report_id, rumor.rumor_id, chosen is None, rumor.report_count, area_code, area_name, status
    )


@dataclass(frozen=True)
class RumorView:
    """A rumor with the vetter's suggestion and (for the detail view) its reports."""

    rumor: repo.RumorRow
    suggestion: Suggestion
    expired: bool
    reports: tuple[repo.ReportRow, ...] = ()


def _suggest(ctx: Context, rumor: repo.RumorRow, notices: Sequence[repo.NoticeRow]) -> Suggestion:
    return suggest_assessment(
        RumorFacts(rumor.status, rumor.area_code, rumor.first_observed_at, rumor.last_observed_at),
        [
            NoticeFacts(
                n.notice_id, n.status, n.area_code, n.window_start, n.window_end,
                n.cancelled_at is not None,
            )
            for n in notices
        ],
        gazetteer=ctx.gazetteer,
        slack=timedelta(minutes=ctx.settings.rumor_notice_slack_minutes),
    )  # fmt: skip


async def list_rumors(*, sessions: Sessions, ctx: Context) -> list[RumorView]:
    """The ledger, newest first, each with its suggested status."""
    now = _now()
    async with sessions() as session:
        rumors = await repo.list_rumors(session)
        notices = await repo.recent_notices(session, since=now - timedelta(days=7))
    return [
        RumorView(r, _suggest(ctx, r, notices), r.expires_at is not None and r.expires_at <= now)
        for r in rumors
    ]


async def get_rumor(*, sessions: Sessions, ctx: Context, rumor_id: uuid.UUID) -> RumorView:
    """One rumor with its reports and suggestion."""
    now = _now()
    async with sessions() as session:
        rumor = await repo.get_rumor(session, rumor_id)
        if rumor is None:
            raise NotFound(str(rumor_id))
        reports = await repo.reports_of(session, rumor_id)
        notices = await repo.recent_notices(session, since=now - timedelta(days=7))
    expired = rumor.expires_at is not None and rumor.expires_at <= now
    return RumorView(rumor, _suggest(ctx, rumor, notices), expired, tuple(reports))


async def assess_rumor(
    *,
    sessions: Sessions,
    ctx: Context,
    actor: Actor,
    rumor_id: uuid.UUID,
    assessment: RumorAssessment,
    as_of: datetime | None,
    expires_at: datetime | None,
    linked_notice_ids: Sequence[uuid.UUID],
) -> tuple[repo.RumorRow, uuid.UUID]:
    """Set a rumor's status (a vetter's decision) and draft the Rumor/Fact bulletin."""
    as_of = as_of or _now()
    expires_at = expires_at or as_of + timedelta(
        minutes=ctx.settings.rumor_assessment_valid_minutes
    )
    if expires_at <= as_of:
        raise InvalidInput("assessment.expiry_before_as_of", "expires_at must be after as_of")
    async with sessions() as session, session.begin():
        rumor = await repo.get_rumor(session, rumor_id, for_update=True)
        if rumor is None:
            raise NotFound(str(rumor_id))
        notices = await repo.get_notices(session, linked_notice_ids)
        unknown = set(linked_notice_ids) - {n.notice_id for n in notices}
        if unknown:
            raise InvalidInput(
                "assessment.unknown_notice", "unknown notice ids: " + ", ".join(map(str, unknown))
            )
        rumor = await repo.assess(
            session,
            rumor,
            assessment=assessment,
            as_of=as_of,
            expires_at=expires_at,
            actor=actor,
            linked_notice_ids=linked_notice_ids,
        )
        await repo.record(
            session,
            aggregate="rumor",
            aggregate_id=rumor_id,
            action="assessed",
            actor=actor,
            detail={
                "assessment": assessment,
                "revision": rumor.assessment_revision,
                "linked_notice_ids": [str(i) for i in rumor.linked_notice_ids],
            },
        )
        await enqueue(
            session,
            RumorAssessed(
                rumor_id=rumor_id,
                status=rumor.status,
                area_code=rumor.area_code,
                area=rumor.area,
                assessment=assessment,
                revision=rumor.assessment_revision,
                as_of=as_of,
                expires_at=expires_at,
                assessed_by=actor.id,
                linked_notice_ids=rumor.linked_notice_ids,
            ),
            source=ctx.source,
        )
        status = bulletin_status([rumor.status, *(n.status for n in notices)])
        live = [n for n in notices if n.cancelled_at is None and n.window_start and n.window_end]
        confirmed = assessment == "Confirmed" and bool(live)
        variables = _area_variables(ctx, rumor.area_code, rumor.area)
        for lang in LANGUAGES:
            variables[lang].update(
                drill=is_drill(status),
                assessment=assessment,
                observed_at=rumor.first_observed_at,
                as_of=as_of,
                expires_at=expires_at,
                window_start=min(n.window_start for n in live) if confirmed else None,  # type: ignore[type-var]
                window_end=max(n.window_end for n in live) if confirmed else None,  # type: ignore[type-var]
            )
        # The assessing vetter is the author: the assessment decides what the bulletin says,
        # so another vetter must approve it.
        bulletin_id = await _create_draft(
            session,
            ctx,
            kind="rumor_fact",
            template_id="rumor_fact",
            status=status,
            variables=variables,
            notice_ids=rumor.linked_notice_ids,
            rumor_id=rumor_id,
            area_code=rumor.area_code,
            standby_for_notice=None,
            first_reported_at=rumor.first_reported_at,
            author=actor,
        )
    log.info(
        "rumor.assessed",
        rumor_id=str(rumor_id),
        assessment=assessment,
        revision=rumor.assessment_revision,
        bulletin_id=str(bulletin_id),
    )
    return rumor, bulletin_id


# -- bulletins (HTTP) -------------------------------------------------------------------------


@dataclass(frozen=True)
class BulletinView:
    """A bulletin with every version (the latest last)."""

    bulletin: repo.BulletinRow
    versions: tuple[repo.VersionRow, ...]

    @property
    def latest(self) -> repo.VersionRow:
        """The newest version (a draft, a published version or a retraction)."""
        return self.versions[-1]

    @property
    def last_published(self) -> repo.VersionRow | None:
        """The newest published version, if any."""
        published = [v for v in self.versions if v.state == "published"]
        return published[-1] if published else None


async def list_bulletins(
    *, sessions: Sessions, states: Sequence[str] | None = None
) -> list[tuple[repo.BulletinRow, repo.VersionRow]]:
    """Bulletins with their latest version, most recently changed first."""
    async with sessions() as session:
        return await repo.list_bulletins(session, states=states)


async def get_bulletin(*, sessions: Sessions, bulletin_id: uuid.UUID) -> BulletinView:
    """One bulletin with its versions."""
    async with sessions() as session:
        return await _load(session, bulletin_id)


async def _load(
    session: AsyncSession, bulletin_id: uuid.UUID, *, for_update: bool = False
) -> BulletinView:
    bulletin = await repo.get_bulletin(session, bulletin_id, for_update=for_update)
    if bulletin is None:
        raise NotFound(str(bulletin_id))
    return BulletinView(bulletin, tuple(await repo.versions_of(session, bulletin_id)))


async def timeline(
    *, sessions: Sessions, aggregate: Literal["rumor", "bulletin"], aggregate_id: uuid.UUID
) -> list[repo.AuditEntry]:
    """Every recorded step of a rumor or bulletin."""
    async with sessions() as session:
        if aggregate == "bulletin" and await repo.get_bulletin(session, aggregate_id) is None:
            raise NotFound(str(aggregate_id))
        return await repo.timeline(session, aggregate=aggregate, aggregate_id=aggregate_id)


async def deliveries_and_receipts(
    *, sessions: Sessions, bulletin_id: uuid.UUID
) -> tuple[list[repo.DeliveryRow], list[repo.ReceiptRow]]:
    """Who was sent which version, and who confirmed receipt."""
    async with sessions() as session:
        if await repo.get_bulletin(session, bulletin_id) is None:
            raise NotFound(str(bulletin_id))
        return (
            await repo.deliveries_of(session, bulletin_id),
            await repo.receipts_of(session, bulletin_id),
        )


def _published_versions(view: BulletinView) -> list[int]:
    return [v.version for v in view.versions if v.state == "published"]


async def edit_bulletin(
    *,
    sessions: Sessions,
    ctx: Context,
    actor: Actor,
    bulletin_id: uuid.UUID,
    language: Language,
    changes: Mapping[str, str],
) -> BulletinView:
    """A vetter edits one language: the guardrails run again and sign-offs start over.

    A draft is edited in place (a new revision; the editor becomes its author, so someone
    else must approve). A published bulletin gets a new draft version, a CAP Update.
    """
    now = _now()
    async with sessions() as session, session.begin():
        view = await _load(session, bulletin_id, for_update=True)
        bulletin, latest = view.bulletin, view.latest
        check_editable(bulletin.state)
        in_place = latest.state == "drafted"
        base = latest if in_place else view.last_published
        if base is None or base.msg_type == "Cancel":
            raise VettingError("vetting.not_editable", "nothing editable in this bulletin")
        texts = {lang: dict(sections) for lang, sections in base.texts.items()}
        texts[language].update(changes)
        sections = _sections(texts)
        findings = await _check(
            session,
            ctx,
            texts=sections,
            status=bulletin.status,
            channels=base.channels,
            notice_ids=bulletin.notice_ids,
        )
        blocked = blocked_reasons(findings)
        if in_place:
            version, msg_type, references = latest.version, latest.msg_type, latest.references
            await repo.update_version(
                session,
                bulletin_id,
                version,
                texts=texts,
                findings=[f.as_dict() for f in findings],
                blocked_reasons=list(blocked),
                revision=latest.revision + 1,
                signoffs={},
                author_id=str(actor.id),
                author_name=actor.name,
                drafted_at=now,
            )
        else:
            # published -> a new version drafted as its Update
            version, msg_type = latest.version + 1, "Update"
            references = references_for(bulletin_id, _published_versions(view))
            await repo.insert_version(
                session,
                bulletin_id=bulletin_id,
                version=version,
                msg_type=msg_type,
                references=references,
                state="drafted",
                texts=texts,
                findings=[f.as_dict() for f in findings],
                blocked_reasons=blocked,
                channels=base.channels,
                author=actor,
                now=now,
            )
            await repo.update_bulletin(session, bulletin_id, current_version=version)
        await repo.record(
            session,
            aggregate="bulletin",
            aggregate_id=bulletin_id,
            version=version,
            action="edited",
            actor=actor,
            detail={
                "language": language,
                "sections": sorted(changes),
                "blocked_reasons": list(blocked),
            },
        )
        await enqueue(
            session,
            BulletinDrafted(
                bulletin_id=bulletin_id,
                version=version,
                msg_type=msg_type,
                references=tuple(references),
                status=bulletin.status,
                kind=bulletin.kind,
                rumor_id=bulletin.rumor_id,
                notice_ids=bulletin.notice_ids,
                languages=LANGUAGES,
                template_id=bulletin.template_id,
                author_id=actor.id,
                blocked_reasons=blocked,
                drafted_at=now,
            ),
            source=ctx.source,
        )
        _count_blocks(session, bulletin_id, blocked)
        result = await _load(session, bulletin_id)
    log.info(
        "bulletin.edited",
        bulletin_id=str(bulletin_id),
        version=version,
        language=language,
        blocked_reasons=list(blocked),
    )
    return result


async def _fresh_findings(
    session: AsyncSession, ctx: Context, view: BulletinView
) -> tuple[list[Finding], tuple[str, ...]]:
    """Run every guardrail again: a notice update may have added restricted terms since."""
    latest = view.latest
    findings = await _check(
        session,
        ctx,
        texts=_sections(latest.texts),
        status=view.bulletin.status,
        channels=latest.channels,
        notice_ids=view.bulletin.notice_ids,
    )
    blocked = blocked_reasons(findings)
    if blocked != latest.blocked_reasons:
        await repo.update_version(
            session,
            view.bulletin.bulletin_id,
            latest.version,
            findings=[f.as_dict() for f in findings],
            blocked_reasons=list(blocked),
        )
    return findings, blocked


def _add_signoffs(
    latest: repo.VersionRow, actor: Actor, languages: Iterable[Language], blocked: Sequence[str]
) -> dict[str, dict[str, Any]]:
    signoffs: dict[str, dict[str, Any]] = {
        lang: dict(value) for lang, value in latest.signoffs.items()
    }
    for lang in languages:
        check_sign_off(
            state=latest.state, author_id=latest.author_id, vetter_id=actor.id, blocked=blocked
        )
        signoffs[lang] = {
            "by": str(actor.id),
            "name": actor.name,
            "at": _now().isoformat(),
            "revision": latest.revision,
        }
    return signoffs


async def sign_off(
    *,
    sessions: Sessions,
    ctx: Context,
    actor: Actor,
    bulletin_id: uuid.UUID,
    languages: Sequence[Language],
) -> BulletinView:
    """A vetter (not the author) signs off language versions of a draft no guardrail blocks."""
    async with sessions() as session, session.begin():
        view = await _load(session, bulletin_id, for_update=True)
        _findings, blocked = await _fresh_findings(session, ctx, view)
        signoffs = _add_signoffs(view.latest, actor, languages, blocked)
        await repo.update_version(session, bulletin_id, view.latest.version, signoffs=signoffs)
        for lang in languages:
            await repo.record(
                session,
                aggregate="bulletin",
                aggregate_id=bulletin_id,
                version=view.latest.version,
                action="signed_off",
                actor=actor,
                detail={"language": lang, "revision": view.latest.revision},
            )
        result = await _load(session, bulletin_id)
    log.info("bulletin.signed_off", bulletin_id=str(bulletin_id), languages=list(languages))
    return result


_PURPOSE: dict[str, DeliveryPurpose] = {
    "Alert": "bulletin",
    "Update": "update",
    "Cancel": "retraction",
}


async def _request_deliveries(
    session: AsyncSession,
    ctx: Context,
    *,
    bulletin: repo.BulletinRow,
    version: int,
    msg_type: str,
    texts: Mapping[Language, Sections],
    now: datetime,
) -> int:
    """One delivery request per liaison and channel, and one per radio desk channel."""
    requests: list[DeliveryRequested] = []
    purpose = _PURPOSE[msg_type]

    def request(
        recipient: Recipient, channel: Any, language: Language, headline: str, body: str
    ) -> None:
        requests.append(
            DeliveryRequested(
                delivery_id=delivery_id(bulletin.bulletin_id, version, recipient.id, channel),
                origin="rumor_control",
                aggregate_id=bulletin.bulletin_id,
                aggregate_version=version,
                purpose=purpose,
                recipient_id=recipient.id,
                channel=channel,
                language=language,
                status=bulletin.status,
                headline=headline[:300],
                body=body,
                requested_at=now,
            )
        )

    for liaison in ctx.department.liaisons:
        text = texts[liaison.language]
        for channel in liaison.channels():
            request(
                liaison,
                channel,
                liaison.language,
                text.headline,
                liaison_text(text, liaison.language),
            )
    desk = ctx.department.radio_desk
    if desk is not None:
        headline, body = radio_delivery_text(
            spanish=texts["es"],
            english=texts["en"],
            drill=is_drill(bulletin.status),
            words_per_minute=ctx.settings.rumor_radio_words_per_minute,
            bulletin_ref=f"{bulletin.bulletin_id} v{version}",
        )
        for channel in desk.channels():
            request(desk, channel, "es", headline, body)
    for item in requests:
        await enqueue(session, item, source=ctx.source)
    return len(requests)


async def approve(
    *,
    sessions: Sessions,
    ctx: Context,
    actor: Actor,
    bulletin_id: uuid.UUID,
    sign_off_languages: Sequence[Language] = (),
) -> BulletinView:
    """drafted -> approved -> published, in one transaction: events, deliveries, feeds."""
    now = _now()
    async with sessions() as session, session.begin():
        view = await _load(session, bulletin_id, for_update=True)
        bulletin, latest = view.bulletin, view.latest
        _findings, blocked = await _fresh_findings(session, ctx, view)
        signoffs = (
            _add_signoffs(latest, actor, sign_off_languages, blocked)
            if sign_off_languages
            else {lang: dict(v) for lang, v in latest.signoffs.items()}
        )
        check_approval(
            state=latest.state,
            author_id=latest.author_id,
            vetter_id=actor.id,
            blocked=blocked,
            signed=signoffs,
        )
        expires_at = None
        if bulletin.rumor_id is not None:
            rumor = await repo.get_rumor(session, bulletin.rumor_id)
            if rumor is not None and rumor.expires_at is not None and rumor.expires_at > now:
                expires_at = rumor.expires_at
        await repo.update_version(
            session,
            bulletin_id,
            latest.version,
            state="published",
            signoffs=signoffs,
            approved_by=str(actor.id),
            approved_at=now,
            published_at=now,
            expires_at=expires_at,
        )
        await repo.update_bulletin(session, bulletin_id, state="published")
        for lang in sign_off_languages:
            await repo.record(
                session,
                aggregate="bulletin",
                aggregate_id=bulletin_id,
                version=latest.version,
                action="signed_off",
                actor=actor,
                detail={"language": lang, "revision": latest.revision},
            )
        texts = _sections(latest.texts)
        channels: tuple[PublishChannel, ...] = tuple(latest.channels)  # type: ignore[arg-type]
        common: dict[str, Any] = {
            "bulletin_id": bulletin_id,
            "version": latest.version,
            "msg_type": latest.msg_type,
            "references": latest.references,
            "status": bulletin.status,
            "kind": bulletin.kind,
            "rumor_id": bulletin.rumor_id,
            "notice_ids": bulletin.notice_ids,
        }
        await enqueue(
            session,
            BulletinApproved(
                **common,
                languages=LANGUAGES,
                signoffs=tuple(
                    LanguageSignoff(
                        language=lang,
                        signed_off_by=uuid.UUID(value["by"]),
                        signed_off_at=datetime.fromisoformat(value["at"]),
                    )
                    for lang, value in sorted(signoffs.items())
                ),
                author_id=latest.author_id,
                approved_by=actor.id,
                approved_at=now,
            ),
            source=ctx.source,
        )
        area = ctx.gazetteer.get(bulletin.area_code)
        await enqueue(
            session,
            BulletinPublished(
                **common,
                texts=tuple(
                    BulletinText(language=lang, headline=t.headline, body=t.body)
                    for lang, t in texts.items()
                ),
                channels=channels,
                area_code=bulletin.area_code,
                area=None if area is None else area.name("en"),
                approved_by=actor.id,
                published_at=now,
                expires_at=expires_at,
            ),
            source=ctx.source,
        )
        requested = await _request_deliveries(
            session, ctx, bulletin=bulletin, version=latest.version, msg_type=latest.msg_type,
            texts=texts, now=now,
        )  # fmt: skip
        await repo.record(
            session,
            aggregate="bulletin",
            aggregate_id=bulletin_id,
            version=latest.version,
            action="approved",
            actor=actor,
            detail={"signoffs": {lang: v["by"] for lang, v in signoffs.items()}},
        )
        await repo.record(
            session,
            aggregate="bulletin",
            aggregate_id=bulletin_id,
            version=latest.version,
            action="published",
            actor=actor,
            detail={"channels": list(channels), "deliveries_requested": requested},
        )
        result = await _load(session, bulletin_id)
    BULLETINS_PUBLISHED.labels(bulletin.kind, latest.msg_type).inc()
    if bulletin.first_reported_at is not None:
        REPORT_TO_BULLETIN_SECONDS.observe((now - bulletin.first_reported_at).total_seconds())
    log.info(
        "bulletin.published",
        bulletin_id=str(bulletin_id),
        version=latest.version,
        msg_type=latest.msg_type,
        status=bulletin.status,
        channels=list(channels),
        deliveries_requested=requested,
        seconds_since_first_report=(
            None
            if bulletin.first_reported_at is None
            else round((now - bulletin.first_reported_at).total_seconds(), 1)
        ),
    )
    return result


async def reject(
    *,
    sessions: Sessions,
    ctx: Context,
    actor: Actor,
    bulletin_id: uuid.UUID,
    reason_codes: Sequence[str],
    comment: str | None,
) -> BulletinView:
    """drafted -> rejected; a rejected update leaves the published version in force."""
    now = _now()
    async with sessions() as session, session.begin():
        view = await _load(session, bulletin_id, for_update=True)
        bulletin, latest = view.bulletin, view.latest
        if latest.state != "drafted":
            raise VettingError("vetting.not_a_draft", f"the current version is {latest.state}")
        codes = tuple(sorted(set(reason_codes)))
        await repo.update_version(
            session,
            bulletin_id,
            latest.version,
            state="rejected",
            rejected_by=str(actor.id),
            rejected_at=now,
            reason_codes=list(codes),
            vetter_comment=comment,
        )
        if bulletin.state == "drafted":
            await repo.update_bulletin(session, bulletin_id, state="rejected")
        await repo.record(
            session,
            aggregate="bulletin",
            aggregate_id=bulletin_id,
            version=latest.version,
            action="rejected",
            actor=actor,
            detail={"reason_codes": list(codes)},
        )
        await enqueue(
            session,
            BulletinRejected(
                bulletin_id=bulletin_id,
                version=latest.version,
                msg_type=latest.msg_type,
                references=latest.references,
                status=bulletin.status,
                kind=bulletin.kind,
                rumor_id=bulletin.rumor_id,
                notice_ids=bulletin.notice_ids,
                rejected_by=actor.id,
                reason_codes=codes,
                rejected_at=now,
            ),
            source=ctx.source,
        )
        result = await _load(session, bulletin_id)
    log.info("bulletin.rejected", bulletin_id=str(bulletin_id), reason_codes=list(codes))
    return result


async def retract(
    *,
    sessions: Sessions,
    ctx: Context,
    actor: Actor,
    bulletin_id: uuid.UUID,
    reason_code: str,
) -> BulletinView:
    """published -> retracted: a correction goes out and the feeds carry a CAP Cancel."""
    now = _now()
    async with sessions() as session, session.begin():
        view = await _load(session, bulletin_id, for_update=True)
        bulletin, latest = view.bulletin, view.latest
        withdrawn = view.last_published
        if bulletin.state != "published" or withdrawn is None:
            raise VettingError(
                "vetting.not_published",
                f"only a published bulletin is retracted ({bulletin.state})",
            )
        if latest.state == "drafted":
            # A pending update is moot once the bulletin is withdrawn.
            await repo.update_version(
                session,
                bulletin_id,
                latest.version,
                state="rejected",
                rejected_by=str(actor.id),
                rejected_at=now,
                reason_codes=["vetting.superseded_by_retraction"],
            )
        version = latest.version + 1
        references = references_for(bulletin_id, _published_versions(view))
        variables = _area_variables(ctx, bulletin.area_code, None)
        for lang in LANGUAGES:
            variables[lang].update(
                drill=is_drill(bulletin.status),
                withdrawn_headline=withdrawn.texts[lang]["headline"],
                published_at=withdrawn.published_at,
            )
        texts = ctx.drafter.render_all("correction", variables)
        await repo.insert_version(
            session,
            bulletin_id=bulletin_id,
            version=version,
            msg_type="Cancel",
            references=references,
            state="published",
            texts=_texts_json(texts),
            findings=[],
            blocked_reasons=(),
            channels=withdrawn.channels,
            author=actor,
            now=now,
            approved_by=str(actor.id),
            approved_at=now,
            published_at=now,
        )
        await repo.update_bulletin(session, bulletin_id, state="retracted", current_version=version)
        await enqueue(
            session,
            BulletinRetracted(
                bulletin_id=bulletin_id,
                version=version,
                references=references,
                status=bulletin.status,
                kind=bulletin.kind,
                rumor_id=bulletin.rumor_id,
                notice_ids=bulletin.notice_ids,
                retracted_by=actor.id,
                reason_code=reason_code,
                retracted_at=now,
            ),
            source=ctx.source,
        )
        requested = await _request_deliveries(
            session,
            ctx,
            bulletin=bulletin,
            version=version,
            msg_type="Cancel",
            texts=texts,
            now=now,
        )
        await repo.record(
            session,
            aggregate="bulletin",
            aggregate_id=bulletin_id,
            version=version,
            action="retracted",
            actor=actor,
            detail={
                "reason_code": reason_code,
                "references": list(references),
                "deliveries_requested": requested,
            },
        )
        result = await _load(session, bulletin_id)
    BULLETINS_PUBLISHED.labels(bulletin.kind, "Cancel").inc()
    log.info(
        "bulletin.retracted",
        bulletin_id=str(bulletin_id),
        version=version,
        reason_code=reason_code,
        deliveries_requested=requested,
    )
    return result


# -- deliveries (Kafka) and receipts (HTTP) ------------------------------------------------------


async def deliver(
    *, session: AsyncSession, ctx: Context, sender: ChannelSender, request: DeliveryRequested
) -> None:
    """Deliver one request of ours: look the address up, add the receipt link, send, record.

    A transient failure raises, so the consumer retries and finally dead-letters it; a
    permanent one (the receiver refused) is recorded and not retried.
    """
    if request.origin != "rumor_control":
        return  # router's requests are router's adapters' business
    if await repo.delivery_done(session, request.delivery_id):
        return
    recipient = ctx.department.recipient(request.recipient_id)
    outcome, error = "sent", None
    if recipient is None:
        # Not ours any more (or another deployment's): nothing to send to.
        outcome, error = "skipped", "unknown_recipient"
    else:
        url = ctx.receipt_url(request.aggregate_id, request.aggregate_version, recipient.id)
        try:
            await sender.send(recipient, request, receipt_url=url)
        except DeliveryError as exc:
            if not exc.permanent:
                DELIVERIES.labels(request.channel, "retry").inc()
                raise
            outcome, error = "failed", str(exc)[:200]
    await repo.insert_delivery(
        session,
        repo.DeliveryRow(
            delivery_id=request.delivery_id,
            bulletin_id=request.aggregate_id,
            version=request.aggregate_version,
            recipient_id=request.recipient_id,
            channel=request.channel,
            language=request.language,
            purpose=request.purpose,
            outcome=outcome,
            error=error,
            attempted_at=_now(),
        ),
    )
    if recipient is not None:
        await repo.record(
            session,
            aggregate="bulletin",
            aggregate_id=request.aggregate_id,
            version=request.aggregate_version,
            action="delivered" if outcome == "sent" else "delivery_failed",
            actor=None,
            detail={
                "recipient_id": str(request.recipient_id),
                "channel": request.channel,
                "language": request.language,
                "delivery_id": str(request.delivery_id),
            },
        )

    def effect() -> None:
        DELIVERIES.labels(request.channel, outcome).inc()
        log.info(
            "bulletin.delivery",
            bulletin_id=str(request.aggregate_id),
            version=request.aggregate_version,
            recipient_id=str(request.recipient_id),
            channel=request.channel,
            outcome=outcome,
            error=error,
        )

    after_commit(session, effect)


@dataclass(frozen=True)
class ReceiptOutcome:
    """A confirmed receipt."""

    bulletin_id: uuid.UUID
    version: int
    recipient: Recipient | None
    first_time: bool


async def record_receipt(*, sessions: Sessions, ctx: Context, token: str) -> ReceiptOutcome:
    """A recipient opened their receipt link: record who has read which version."""
    secret = ctx.settings.link_secret.get_secret_value().encode("utf-8")
    try:
        claims = read_link_token(secret, token, now=int(time.time()))
        if claims.get("k") != "receipt":
            raise InvalidLink("not a receipt link")
        bulletin_id = uuid.UUID(str(claims["b"]))
        version = int(claims["v"])
        recipient_id = uuid.UUID(str(claims["r"]))
    except (LinkTokenError, KeyError, ValueError) as exc:
        raise InvalidLink(type(exc).__name__) from None
    recipient = ctx.department.recipient(recipient_id)
    now = _now()
    async with sessions() as session, session.begin():
        if await repo.get_bulletin(session, bulletin_id) is None:
            raise NotFound(str(bulletin_id))
        first = await repo.save_receipt(
            session, bulletin_id=bulletin_id, version=version, recipient_id=recipient_id, at=now
        )
        if first:
            actor = Actor(recipient_id, recipient.name if recipient else "unknown", "liaison")
            await repo.record(
                session,
                aggregate="bulletin",
                aggregate_id=bulletin_id,
                version=version,
                action="receipt_confirmed",
                actor=actor,
                detail={"recipient_id": str(recipient_id)},
            )
    if first:
        RECEIPTS.inc()
    log.info(
        "bulletin.receipt",
        bulletin_id=str(bulletin_id),
        version=version,
        recipient_id=str(recipient_id),
        first_time=first,
    )
    return ReceiptOutcome(bulletin_id, version, recipient, first)


# -- public feeds ---------------------------------------------------------------------------


async def public_entries(
    *, sessions: Sessions, latest_only: bool = True
) -> list[tuple[repo.BulletinRow, repo.VersionRow]]:
    """Published versions of real bulletins (never drills), newest first; with
    `latest_only`, one per bulletin: its latest word (a Cancel once retracted)."""
    async with sessions() as session:
        rows = await repo.public_versions(session)
    if not latest_only:
        return rows
    seen: set[uuid.UUID] = set()
    latest: list[tuple[repo.BulletinRow, repo.VersionRow]] = []
    for bulletin, version in rows:
        if bulletin.bulletin_id not in seen:
            seen.add(bulletin.bulletin_id)
            latest.append((bulletin, version))
    return latest


async def public_version(
    *, sessions: Sessions, bulletin_id: uuid.UUID, version: int
) -> tuple[repo.BulletinRow, repo.VersionRow, list[repo.VersionRow]]:
    """One published version of a real bulletin, with the bulletin's versions (for CAP refs)."""
    async with sessions() as session:
        view = await _load(session, bulletin_id)
    if is_drill(view.bulletin.status):
        raise NotFound(str(bulletin_id))  # drills are never public
    for candidate in view.versions:
        if candidate.version == version and candidate.state == "published":
            return view.bulletin, candidate, list(view.versions)
    raise NotFound(f"{bulletin_id}:{version}")
