"""The sweeper's use cases on in-memory fakes, with an injected clock instead of waiting."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.intake import sweeping
from services.intake.notices.commands import NoticeSubmission
from services.intake.worker import sweep
from tests.unit.intake.fakes import NOW, FakeUnitOfWork, Store, make_deps
from tests.unit.intake.test_notices_use_cases import cancel, content, submit

WINDOW_END = NOW + timedelta(hours=4)


async def _submitted(store: Store, reference: str = "ERO-1") -> str:
    body = NoticeSubmission.model_validate({"reference": reference, **content()})
    return (await submit(store, make_deps(store), body)).notice.id


async def _expire(store: Store, now: datetime) -> int:
    deps = make_deps(store)
    async with FakeUnitOfWork(store) as uow:
        count = await sweeping.expire_notices(uow, deps=deps, now=now)
        await uow.commit()
    return count


async def _purge(store: Store, now: datetime) -> int:
    deps = make_deps(store)
    async with FakeUnitOfWork(store) as uow:
        count = await sweeping.purge_restricted(uow, deps=deps, now=now)
        await uow.commit()
    return count


async def test_expire_waits_for_the_grace_period_then_closes_without_an_event() -> None:
    store = Store()
    notice_id = await _submitted(store)
    grace = make_deps(store).expiry_grace
    assert await _expire(store, WINDOW_END + grace - timedelta(seconds=1)) == 0
    assert await _expire(store, WINDOW_END + grace) == 1
    notice = store.notices[notice_id]
    assert (notice.state, notice.closed_at) == ("expired", WINDOW_END + grace)
    assert len(store.events) == 1  # notice.received only: expiry publishes nothing
    assert store.audit[-1][0].action == "notice.expired"
    assert await _expire(store, WINDOW_END + grace + timedelta(days=1)) == 0


async def test_purge_drops_sealed_detail_after_retention_and_keeps_the_record() -> None:
    store = Store()
    notice_id = await _submitted(store)
    await cancel(store, make_deps(store), notice_id)
    closed_at = store.notices[notice_id].closed_at
    assert closed_at is not None
    retention = make_deps(store).retention
    assert await _purge(store, closed_at + retention - timedelta(seconds=1)) == 0
    assert await _purge(store, closed_at + retention) == 1
    assert all(v.restricted_sealed is None for v in store.versions[notice_id])
    assert store.notices[notice_id].restricted_purged_at == closed_at + retention
    note = store.audit[-1][0]
    assert (note.action, note.details) == ("notice.restricted_purged", {"versions_purged": 1})
    assert await _purge(store, closed_at + 2 * retention) == 0


async def test_prune_forgets_old_keys_and_signatures() -> None:
    store = Store()
    deps = make_deps(store)
    async with FakeUnitOfWork(store) as uow:
        await uow.requests.remember_key(
            source_key="s", key="k", operation="create", notice_id="n", digest="d", now=NOW
        )
        await uow.requests.record_signature(fingerprint="f", signed_at=NOW, now=NOW)
        await uow.commit()
    async with FakeUnitOfWork(store) as uow:
        assert await sweeping.prune_records(uow, deps=deps, now=NOW + deps.replay_ttl) == 0
        assert await sweeping.prune_records(uow, deps=deps, now=NOW + timedelta(days=8)) == 2
        await uow.commit()
    assert not store.keys
    assert not store.signatures


async def test_sweep_runs_each_step_in_its_own_unit_of_work_until_done() -> None:
    store = Store()
    for number in range(3):
        await _submitted(store, f"ERO-{number}")
    deps = make_deps(store)
    expired_at = WINDOW_END + deps.expiry_grace
    report = await sweep(deps, now=expired_at)
    assert (report.expired, report.purged) == (3, 0)  # retention runs from closing
    assert {n.state for n in store.notices.values()} == {"expired"}
    report = await sweep(deps, now=expired_at + deps.retention)
    assert (report.expired, report.purged) == (0, 3)
