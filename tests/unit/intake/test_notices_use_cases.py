"""Every notice use case on in-memory fakes: no database, no Kafka, no network."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest

from schemas import fingerprints
from schemas.directory import DIRECTORY_ID, DirectoryPublished
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from services.common.auth import Principal
from services.intake import notices
from services.intake.deps import IntakeDeps
from services.intake.directory import record_directory
from services.intake.domain import IntakeConflict, IntakeNotFound, SignatureRejected
from services.intake.notices import submission as submission_module
from services.intake.notices.commands import NoticeCancellation, NoticeRevision, NoticeSubmission
from services.intake.permissions import Access
from services.intake.repository import NoticeFilters
from services.intake.signatures import SignedRequest
from tests.unit.intake.fakes import (
    CONTACT,
    FIELD_OFFICE,
    NOW,
    OPS,
    OTHER_OFFICE,
    FakeUnitOfWork,
    Store,
    make_deps,
)

T = TypeVar("T")

RESTRICTED_NAME = "Esteban Quiroga"


def content(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "Exercise",
        "operation_type": "targeted_arrest",
        "public_safety_nexus": True,
        "window_start": (NOW + timedelta(hours=1)).isoformat(),
        "window_end": (NOW + timedelta(hours=4)).isoformat(),
        "area": "Mission District",
        "summary": "Federal agents plan a targeted operation in the district.",
        "source": {"field_office_name": "San Francisco ERO", "agent": {"name": "Dana Whitlock"}},
        "restricted": {"names": [RESTRICTED_NAME], "addresses": ["2231 Folsom St Apt 4"]},
    }
    body.update(overrides)
    return body


def submission(reference: str = "ERO-1", **overrides: Any) -> NoticeSubmission:
    return NoticeSubmission.model_validate({"reference": reference, **content(**overrides)})


async def run(store: Store, use_case: Callable[[FakeUnitOfWork], Awaitable[T]]) -> T:
    """What a route does: open a unit of work, run one use case, commit."""
    async with FakeUnitOfWork(store) as uow:
        result = await use_case(uow)
        await uow.commit()
    return result


async def submit(
    store: Store, deps: IntakeDeps, body: NoticeSubmission, **kwargs: Any
) -> notices.NoticeResult:
    args: dict[str, Any] = {"idempotency_key": None, "signed": None, "now": NOW, **kwargs}
    return await run(
        store,
        lambda uow: notices.submit_notice(
            uow, deps=deps, principal=FIELD_OFFICE, submission=body, **args
        ),
    )


async def revise(
    store: Store, deps: IntakeDeps, notice_id: str, **overrides: Any
) -> notices.NoticeResult:
    revision = NoticeRevision.model_validate(content(**overrides))
    return await run(
        store,
        lambda uow: notices.revise_notice(
            uow,
            deps=deps,
            principal=FIELD_OFFICE,
            notice_id=notice_id,
            revision=revision,
            idempotency_key=None,
            signed=None,
            now=NOW + timedelta(minutes=5),
        ),
    )


async def cancel(
    store: Store,
    deps: IntakeDeps,
    notice_id: str,
    *,
    reason: str = "operation_cancelled",
    **kw: Any,
) -> notices.NoticeResult:
    cancellation = NoticeCancellation.model_validate({"reason": reason})
    args: dict[str, Any] = {"principal": FIELD_OFFICE, "idempotency_key": None, **kw}
    return await run(
        store,
        lambda uow: notices.cancel_notice(
            uow,
            deps=deps,
            notice_id=notice_id,
            cancellation=cancellation,
            signed=None,
            now=NOW + timedelta(minutes=9),
            **args,
        ),
    )


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def deps(store: Store) -> IntakeDeps:
    return make_deps(store)


# --- submission ----------------------------------------------------------------------


async def test_submit_records_version_1_with_its_event_and_audit(
    store: Store, deps: IntakeDeps
) -> None:
    result = await submit(store, deps, submission())
    assert result.notice.state == "received"
    assert result.access is Access.METADATA  # the field office sees metadata only
    assert not result.replayed
    assert [v.msg_type for v in result.versions] == ["Alert"]
    (event,) = store.events
    assert isinstance(event, NoticeReceived)
    assert str(event.notice_id) == result.notice.id
    assert RESTRICTED_NAME not in event.model_dump_json()  # fingerprints, never the terms
    assert event.restricted_fingerprints
    assert [note.action for note, _ in store.audit] == ["notice.created"]
    sealed = store.versions[result.notice.id][0].restricted_sealed
    assert sealed is not None
    assert RESTRICTED_NAME not in sealed


async def test_submit_retry_by_reference_answers_the_recorded_notice(
    store: Store, deps: IntakeDeps
) -> None:
    first = await submit(store, deps, submission())
    again = await submit(store, deps, submission())
    assert again.replayed
    assert again.notice.id == first.notice.id
    assert len(store.events) == 1


async def test_submit_same_reference_other_content_conflicts_and_keeps_nothing(
    store: Store, deps: IntakeDeps
) -> None:
    await submit(store, deps, submission())
    with pytest.raises(IntakeConflict) as error:
        await submit(store, deps, submission(summary="Something else entirely."))
    assert error.value.code == "reference-conflict"
    assert len(store.notices) == 1


async def test_submit_retry_by_idempotency_key(store: Store, deps: IntakeDeps) -> None:
    first = await submit(store, deps, submission(), idempotency_key="k-1")
    again = await submit(store, deps, submission(), idempotency_key="k-1")
    assert again.replayed
    assert again.notice.id == first.notice.id
    with pytest.raises(IntakeConflict) as error:
        await submit(store, deps, submission("ERO-2"), idempotency_key="k-1")
    assert error.value.code == "idempotency-key-reused"


async def test_a_submission_digests_the_whole_request_only_with_an_idempotency_key(
    store: Store, deps: IntakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The request's digest (reference included) is compared only with a key's record:
    # without a key, the content's digest is the one made.
    digested: list[dict[str, Any]] = []
    real = submission_module.content_digest

    def counting(key: bytes, content: Any) -> str:
        digested.append(dict(content))
        return real(key, content)

    monkeypatch.setattr(submission_module, "content_digest", counting)
    await submit(store, deps, submission("ERO-1"))
    assert [("reference" in content) for content in digested] == [False]
    digested.clear()
    first = await submit(store, deps, submission("ERO-2"), idempotency_key="k-2")
    assert [("reference" in content) for content in digested] == [False, True]
    # And the key still tells a retry from another request.
    again = await submit(store, deps, submission("ERO-2"), idempotency_key="k-2")
    assert again.replayed
    assert again.notice.id == first.notice.id
    with pytest.raises(IntakeConflict):
        await submit(store, deps, submission("ERO-3"), idempotency_key="k-2")


async def test_a_signed_request_counts_once(store: Store, deps: IntakeDeps) -> None:
    signed = SignedRequest(fingerprint="f" * 64, signed_at=int(NOW.timestamp()))
    await submit(store, deps, submission(), signed=signed)
    with pytest.raises(SignatureRejected) as error:
        await submit(store, deps, submission("ERO-2"), signed=signed)
    assert error.value.reason == "replayed"
    assert len(store.notices) == 1


async def test_logs_wait_for_the_commit(store: Store, deps: IntakeDeps) -> None:
    async with FakeUnitOfWork(store) as uow:
        await notices.submit_notice(
            uow,
            deps=deps,
            principal=FIELD_OFFICE,
            submission=submission(),
            idempotency_key=None,
            signed=None,
            now=NOW,
        )
        pending = list(uow._effects)
        # Not committed: the use case never commits, and nothing reached the store.
    assert pending
    assert not uow.committed
    assert store.notices == {}


# --- revision ------------------------------------------------------------------------


async def test_revise_records_an_update_with_its_event(store: Store, deps: IntakeDeps) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    result = await revise(store, deps, notice_id, summary="The window moved.")
    assert (result.notice.state, result.notice.current_version) == ("updated", 2)
    assert result.notice.summary == "The window moved."
    assert not result.versions[-1].restricted_changed  # same restricted detail
    assert isinstance(store.events[-1], NoticeUpdated)
    assert store.audit[-1][0].action == "notice.updated"


async def test_revise_with_the_current_content_is_a_retry(store: Store, deps: IntakeDeps) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    await revise(store, deps, notice_id, summary="The window moved.")
    again = await revise(store, deps, notice_id, summary="The window moved.")
    assert again.replayed
    assert again.notice.current_version == 2
    assert len(store.events) == 2


async def test_revise_at_the_wrong_version_conflicts(store: Store, deps: IntakeDeps) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    with pytest.raises(IntakeConflict) as error:
        await revise(store, deps, notice_id, summary="Late.", expected_version=3)
    assert error.value.code == "version-mismatch"


async def test_another_office_cannot_see_or_change_the_notice(
    store: Store, deps: IntakeDeps
) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    with pytest.raises(IntakeNotFound):
        await cancel(store, deps, notice_id, principal=OTHER_OFFICE)
    assert store.notices[notice_id].state == "received"


async def test_cancel_closes_the_notice_once(store: Store, deps: IntakeDeps) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    result = await cancel(store, deps, notice_id)
    assert (result.notice.state, result.notice.current_version) == ("cancelled", 2)
    assert result.notice.closed_at == NOW + timedelta(minutes=9)
    assert result.versions[-1].msg_type == "Cancel"
    assert result.versions[-1].restricted_sealed is None  # detail stays on version 1
    assert isinstance(store.events[-1], NoticeCancelled)
    assert (await cancel(store, deps, notice_id)).replayed
    with pytest.raises(IntakeConflict):
        await cancel(store, deps, notice_id, reason="superseded")
    with pytest.raises(IntakeConflict) as error:
        await revise(store, deps, notice_id, summary="Too late.")
    assert error.value.code == "notice-cancelled"
    assert len(store.events) == 2


# --- reading --------------------------------------------------------------------------


async def test_contact_reads_restricted_detail_and_is_audited(
    store: Store, deps: IntakeDeps
) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    result = await run(
        store,
        lambda uow: notices.read_notice(
            uow, deps=deps, principal=CONTACT, notice_id=notice_id, now=NOW
        ),
    )
    assert result.access is Access.RESTRICTED
    assert result.detail is not None
    assert result.detail.names == (RESTRICTED_NAME,)
    note, _ = store.audit[-1]
    assert (note.action, note.actor) == ("notice.restricted_read", CONTACT)


async def test_a_contact_outside_the_directory_reads_metadata_unless_granted(
    store: Store, deps: IntakeDeps
) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    stranger = dataclasses.replace(CONTACT, token_id="t-x", subject="not-in-directory")

    def read(principal: Principal) -> Any:
        return run(
            store,
            lambda uow: notices.read_notice(
                uow, deps=deps, principal=principal, notice_id=notice_id, now=NOW
            ),
        )

    refused = await read(stranger)
    assert refused.access is Access.METADATA
    assert refused.detail is None
    # The refusal is in the audit chain, as that token, with the reason.
    assert [note.action for note, _ in store.audit] == [
        "notice.created",
        "notice.restricted_refused",
    ]
    assert store.audit[-1][0].details == {"reason": "not_in_directory"}
    assert store.audit[-1][0].actor == stranger
    granted = await read(dataclasses.replace(stranger, restricted_grant=True))
    assert granted.access is Access.RESTRICTED
    assert granted.detail is not None
    assert store.audit[-1][0].action == "notice.restricted_read"


async def test_recording_the_directory_keeps_the_newest_announcement(store: Store) -> None:
    def announced(version: int, at: datetime, *people: str) -> DirectoryPublished:
        return DirectoryPublished(
            directory_id=DIRECTORY_ID,
            version=version,
            person_ids=tuple(uuid.UUID(p) for p in people),
            published_at=at,
        )

    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    v2 = announced(2, NOW, first, second)
    assert await run(store, lambda uow: record_directory(uow, event=v2))
    assert store.directory == ((NOW, 2), frozenset({first, second}))
    # Delivered again, or an older one arriving late: the directory stays as it is.
    old = announced(1, NOW - timedelta(hours=1), first)
    assert not await run(store, lambda uow: record_directory(uow, event=v2))
    assert not await run(store, lambda uow: record_directory(uow, event=old))
    assert store.directory == ((NOW, 2), frozenset({first, second}))
    # A router rebuilt from scratch starts again from version 1, later: that one wins.
    rebuilt = announced(1, NOW + timedelta(hours=1), second)
    assert await run(store, lambda uow: record_directory(uow, event=rebuilt))
    assert store.directory == ((NOW + timedelta(hours=1), 1), frozenset({second}))


async def test_ops_reads_metadata_only_and_leaves_no_read_trace(
    store: Store, deps: IntakeDeps
) -> None:
    notice_id = (await submit(store, deps, submission())).notice.id
    result = await run(
        store,
        lambda uow: notices.read_notice(
            uow, deps=deps, principal=OPS, notice_id=notice_id, now=NOW
        ),
    )
    assert result.access is Access.METADATA
    assert result.detail is None
    assert [note.action for note, _ in store.audit] == ["notice.created"]


async def test_list_pages_newest_first_and_limits_a_field_office_to_its_own(
    store: Store, deps: IntakeDeps
) -> None:
    for number in range(3):
        await submit(store, deps, submission(f"ERO-{number}"), now=NOW + timedelta(minutes=number))

    async def page(principal: Any, cursor: str | None = None) -> notices.NoticePageResult:
        return await run(
            store,
            lambda uow: notices.list_notices(
                uow,
                deps=deps,
                principal=principal,
                filters=NoticeFilters(),
                limit=2,
                offset=0,
                cursor=cursor,
            ),
        )

    first = await page(OPS)
    assert [n.reference for n in first.notices] == ["ERO-2", "ERO-1"]
    assert first.next_cursor is not None
    rest = await page(OPS, first.next_cursor)
    assert [n.reference for n in rest.notices] == ["ERO-0"]
    assert rest.next_cursor is None
    assert (await page(OTHER_OFFICE)).notices == ()


async def test_a_submission_normalises_each_identifying_term_once(
    store: Store, deps: IntakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The releasable check and the fingerprints share the terms' words: a term is
    # normalised once a submission, not once for each (as before the fourteenth round).
    body = submission("ERO-1")
    normalised: list[str] = []
    real = fingerprints.normalize

    def counting(text: str) -> str:
        normalised.append(text)
        return real(text)

    monkeypatch.setattr(fingerprints, "normalize", counting)
    result = await submit(store, deps, body)
    terms = [RESTRICTED_NAME, "2231 Folsom St Apt 4", "Dana Whitlock"]
    assert {term: normalised.count(term) for term in terms} == dict.fromkeys(terms, 1)
    # And the notice still carries the terms' fingerprints.
    event = store.events[-1]
    assert isinstance(event, NoticeReceived)
    assert event.restricted_fingerprints
    assert result.notice.current_version == 1
