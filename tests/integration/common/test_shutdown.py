"""SIGTERM while a consumer is mid-stream loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.cloudevents import new_event
from services.common.db import component_url, make_engine
from services.common.migrations import upgrade
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import produce_raw, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]


def _spawn(env: dict[str, str], topic: str, group: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.slow_consumer", topic, group],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _wait_line(process: subprocess.Popen[str], expected: str, timeout: float = 60) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout)
    assert line.strip() == expected, f"child said {line!r}"


async def test_sigterm_mid_stream_loses_nothing(
    database_url: str | None,
    kafka_bootstrap: str,
    make_settings: Callable[..., CommonSettings],
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    settings = make_settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE TABLE test_effects "
                "(message_id VARCHAR(64), notice_id VARCHAR(64), version INTEGER)"
            )
        )

    # Reads without the services' write lock: on SQLite every unit of work of `engine`
    # begins IMMEDIATE, and under load the child's writes could hold this test's reads
    # off past the busy timeout ("database is locked"). WAL lets a plain read run beside
    # them.
    reader = (
        create_async_engine(component_url(settings, "intake")) if database_url is None else engine
    )

    async def effects() -> list[str]:
        async with reader.connect() as conn:
            return [
                r[0] for r in await conn.execute(sa.text("SELECT message_id FROM test_effects"))
            ]

    topic, group = unique("aviso.test.sigterm"), unique("sigterm")
    # Long enough (about 0.15 s a handler) that a SIGTERM after the first five effects
    # cannot be outrun by the consumer, however late the signal lands on a loaded machine.
    events = [new_event(notice_updated(uuid.uuid4(), 2), source="aviso.test") for _ in range(120)]
    await produce_raw(
        kafka_bootstrap,
        topic,
        [
            (e.key.encode(), e.payload.encode(), [(k, v.encode()) for k, v in e.headers.items()])
            for e in events
        ],
    )
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        AVISO_VAR_DIR=str(settings.var_dir),
        AVISO_LOG_FORMAT="json",
    )
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url

    first = _spawn(env, topic, group)
    try:
        await _wait_line(first, "READY")
        await wait_for(lambda: _at_least(effects, 5), timeout=60)
        first.send_signal(signal.SIGTERM)
        await _wait_line(first, "STOPPED", timeout=30)
        assert await asyncio.to_thread(first.wait, 30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    done_before_restart = len(await effects())
    assert done_before_restart < len(events), "SIGTERM should have landed mid-stream"

    second = _spawn(env, topic, group)
    try:
        await _wait_line(second, "READY")
        await wait_for(lambda: _at_least(effects, len(events)), timeout=90)
        await asyncio.sleep(1.5)  # room for a wrongly redelivered message to show up
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.to_thread(second.wait, 30)

    seen = await effects()
    await reader.dispose()
    await engine.dispose()
    assert sorted(seen) == sorted(e.message_id for e in events), "each event applied exactly once"


async def _at_least(effects: Callable[..., object], n: int) -> bool:
    return len(await effects()) >= n  # type: ignore[misc, arg-type]
