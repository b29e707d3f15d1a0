"""Intake's consumer member: its group, its inbox and how often it talks to the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.topics import DIRECTORY
from services.common.db import make_session_factory
from services.common.kafka import EventConsumer
from services.intake import subscribers
from services.intake.config import IntakeSettings


def _member(settings: IntakeSettings) -> tuple[EventConsumer, dict[str, Any]]:
    engine = create_async_engine("sqlite+aiosqlite://")  # never connects here
    consumer = EventConsumer(
        broker=KafkaBroker(), sessions=make_session_factory(engine), settings=settings,
        service="intake",
    )  # fmt: skip
    subscribers.register(consumer, settings)
    (subscriber,) = consumer._broker.subscribers
    args: dict[str, Any] = subscriber._connection_args  # type: ignore[attr-defined]
    return consumer, args


def test_intakes_member_heartbeats_a_third_as_often_as_routers(tmp_path: Path) -> None:
    # Directory announcements wait on nobody: a 6 s session (heartbeat every 2 s) instead
    # of the services' 2 s (every 667 ms), one broker request a second fewer while idle.
    settings = IntakeSettings(var_dir=tmp_path)
    _, args = _member(settings)
    assert settings.intake_consumer_session_timeout_ms == 6_000  # the default
    assert args["session_timeout_ms"] == 6_000
    assert args["heartbeat_interval_ms"] == 2_000
    assert settings.consumer_session_timeout_ms == 2_000  # router's stays as it was
    # Answered as each announcement lands, as before.
    assert args["fetch_min_bytes"] == 1


def test_intakes_idle_member_sends_an_empty_fetch_every_five_seconds(tmp_path: Path) -> None:
    # An announcement is answered as it lands whatever the wait; a longer long-poll only
    # means fewer empty fetches (one every 5 s instead of every second) and a slower
    # takeover after a crash, which directory announcements can afford.
    settings = IntakeSettings(var_dir=tmp_path)
    _, args = _member(settings)
    assert settings.intake_consumer_fetch_max_wait_ms == 5_000  # the default
    assert args["fetch_max_wait_ms"] == args["consumer_timeout_ms"] == 5_000
    assert settings.consumer_fetch_max_wait_ms == 1_000  # router's stays as it was


def test_intakes_group_keeps_its_id_and_inbox(tmp_path: Path) -> None:
    # Declaring the group must not rename what it recorded: an announcement it applied
    # before the upgrade is never applied again.
    settings = IntakeSettings(var_dir=tmp_path, intake_group_prefix="dept")
    consumer, _ = _member(settings)
    (subscriber,) = consumer._broker.subscribers
    assert subscriber.group_id == "dept.directory"  # type: ignore[attr-defined]
    (subscription,) = consumer._subscriptions.values()
    assert subscription.inboxes == {DIRECTORY: "dept.directory"}
