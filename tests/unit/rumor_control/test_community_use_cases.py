"""Community subscribers by SMS, with fakes: keywords, sealed numbers, bulletin orders."""

from __future__ import annotations

import uuid

import pytest
import structlog

from services.common.delivery import Skip, SmsOutbound
from services.rumor_control import vetting
from services.rumor_control.community import NumberVault, SealError, decide, parse_keyword
from services.rumor_control.community.use_cases import handle_keyword
from services.rumor_control.deps import RumorControlDeps
from tests.unit.rumor_control.conftest import APPROVER, standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store
from tests.unit.rumor_control.test_delivery_plan import _plan, _record, _resolve

NUMBER = "+15557650301"


@pytest.mark.parametrize(
    ("text", "command", "language"),
    [
        ("JOIN", "join", "en"),
        ("unirme", "join", "es"),
        ("Yes", "confirm", "en"),
        ("CONFIRMO.", "confirm", "es"),
        ("stop", "stop", "en"),
        ("ALTO por favor", "stop", "es"),
        ("START", "start", "en"),
        ("alta", "start", "es"),
    ],
)
def test_keywords(text: str, command: str, language: str) -> None:
    keyword = parse_keyword(text)
    assert keyword is not None
    assert (keyword.command, keyword.language) == (command, language)


@pytest.mark.parametrize("text", ["", "1", "SI", "OK", "hello", "please STOP", "STOPP"])
def test_not_keywords(text: str) -> None:
    assert parse_keyword(text) is None


def test_opt_in_needs_the_confirmation_and_start_needs_a_past_confirmation() -> None:
    assert decide(None, "join").state == "pending"
    assert decide(None, "confirm").state is None
    assert decide("pending", "confirm").state == "active"
    assert decide("pending", "start").state == "pending"  # START is no shortcut
    assert decide("active", "stop").state == "stopped"
    assert decide("stopped", "start").state == "active"
    assert decide(None, "stop").reply == "not_joined"


def test_a_sealed_number_opens_only_for_its_subscriber(deps: RumorControlDeps) -> None:
    vault = deps.numbers
    owner = uuid.uuid4()
    sealed = vault.seal(NUMBER, subscriber_id=owner)
    assert NUMBER.lstrip("+") not in sealed
    assert vault.open(sealed, subscriber_id=owner) == NUMBER
    with pytest.raises(SealError):
        vault.open(sealed, subscriber_id=uuid.uuid4())
    assert vault.lookup_hash(NUMBER) == vault.lookup_hash(NUMBER) != vault.lookup_hash("+1555")
    assert "keys=" not in repr(vault)  # key material stays out of reprs


def test_the_published_number_key_is_refused_outside_development(deps: RumorControlDeps) -> None:
    settings = deps.settings.model_copy(update={"development_mode": False})
    assert "AVISO_RUMOR_SMS_NUMBER_KEYS" in settings.development_secrets()
    assert isinstance(NumberVault.from_settings(settings), NumberVault)


async def text(deps: RumorControlDeps, store: Store, body: str, sender: str = NUMBER) -> object:
    uow = FakeUnitOfWork(store)
    with structlog.testing.capture_logs() as logs:
        outcome = await handle_keyword(uow, deps=deps, sender=sender, text=body)
        await uow.commit()
    assert sender.lstrip("+") not in str(logs)
    return outcome


async def test_join_confirm_stop_start_each_change_the_subscription_and_get_a_reply(
    deps: RumorControlDeps, store: Store
) -> None:
    joined = await text(deps, store, "UNIRME")
    (subscriber,) = store.subscribers.values()
    assert (subscriber.state, subscriber.language) == ("pending", "es")
    assert NUMBER.lstrip("+") not in subscriber.number_sealed + subscriber.number_hash
    assert "CONFIRMO" in str(joined.reply)  # type: ignore[attr-defined]

    confirmed = await text(deps, store, "confirmo")
    assert store.subscribers[subscriber.subscriber_id].state == "active"
    assert store.subscribers[subscriber.subscriber_id].confirmed_at is not None
    assert "ALTO" in str(confirmed.reply)  # type: ignore[attr-defined]

    stopped = await text(deps, store, "STOP")  # in English now
    after = store.subscribers[subscriber.subscriber_id]
    assert (after.state, after.language) == ("stopped", "en")
    assert "START" in str(stopped.reply)  # type: ignore[attr-defined]

    await text(deps, store, "ALTA")
    assert store.subscribers[subscriber.subscriber_id].state == "active"
    assert len(store.subscribers) == 1


async def test_a_join_that_lost_the_race_for_its_number_applies_to_the_winner(
    deps: RumorControlDeps, store: Store
) -> None:
    await text(deps, store, "UNIRME")
    (winner,) = store.subscribers.values()
    uow = FakeUnitOfWork(store)
    found = uow.subscribers.by_hash
    calls: list[str] = []

    async def unseen_at_first(number_hash: str, *, for_update: bool = False) -> object:
        # The first read ran before the other JOIN committed: no subscriber yet.
        calls.append(number_hash)
        return None if len(calls) == 1 else await found(number_hash, for_update=for_update)

    uow.subscribers.by_hash = unseen_at_first  # type: ignore[method-assign]
    outcome = await handle_keyword(uow, deps=deps, sender=NUMBER, text="JOIN")
    await uow.commit()
    assert len(calls) == 2
    assert list(store.subscribers) == [winner.subscriber_id]
    after = store.subscribers[winner.subscriber_id]
    assert (after.state, after.language) == ("pending", "en")  # the later keyword's language
    assert outcome.subscriber_id == winner.subscriber_id
    assert "YES" in str(outcome.reply)


async def test_an_unknown_text_changes_nothing_and_gets_no_reply(
    deps: RumorControlDeps, store: Store
) -> None:
    outcome = await text(deps, store, "what is this")
    assert outcome.reply is None  # type: ignore[attr-defined]
    assert store.subscribers == {}
    stop = await text(deps, store, "ALTO")
    assert store.subscribers == {}
    assert "UNIRME" in str(stop.reply)  # type: ignore[attr-defined]


async def test_a_bulletin_goes_by_sms_to_active_subscribers_in_their_language(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    spanish, english, stopped = "+15557650302", "+15557650303", "+15557650304"
    for number, keywords in ((spanish, ["UNIRME", "CONFIRMO"]), (english, ["JOIN", "YES"])):
        for keyword in keywords:
            await text(deps, store, keyword, sender=number)
    for keyword in ("JOIN", "YES", "STOP"):
        await text(deps, store, keyword, sender=stopped)
    bulletin_id = await standby_draft(deps, store, clock)
    await vetting.approve(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        sign_off_languages=["en", "es"],
    )  # fmt: skip

    orders = [o for o in store.orders.values() if o.channel == "sms"]
    by_language = sorted(o.language for o in orders)
    assert by_language == ["en", "es"]  # the stopped subscriber gets none
    version = store.versions[bulletin_id][1]
    plan = _plan(deps, FakeUnitOfWork(store))
    for order in orders:
        message = await _resolve(plan, _record(order, clock))
        assert isinstance(message, SmsOutbound)
        assert message.text == version.texts[order.language]["sms"]
        assert message.to in (spanish, english)
        assert message.to.lstrip("+") not in str(order.context)

    # ALTO after the publication: the bulletin not yet sent is skipped.
    (spanish_order,) = [o for o in orders if o.language == "es"]
    await text(deps, store, "ALTO", sender=spanish)
    skipped = await _resolve(plan, _record(spanish_order, clock))
    assert skipped == Skip("unsubscribed")


async def test_a_drill_never_reaches_subscribers(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    for keyword in ("JOIN", "YES"):
        await text(deps, store, keyword)
    bulletin_id = await standby_draft(deps, store, clock, status="Exercise")
    await vetting.approve(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        sign_off_languages=["en", "es"],
    )  # fmt: skip
    assert [o for o in store.orders.values() if o.channel == "sms"] == []
