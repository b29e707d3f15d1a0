"""`SessionlessCommit`: what a write sent without a session leaves for the commit.

No database: the stand-in session is bound to an engine that never connects, and the
checks are on what SQLAlchemy's Session `after_commit` listeners are given and run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from services.common.db import SessionlessCommit

_NOTED = "test_sessionless_noted"


@pytest.fixture
def stand_in() -> AsyncSession:
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    return AsyncSession(bind=engine)


@pytest.fixture
def heard() -> Iterator[list[Any]]:
    """What a Session `after_commit` listener finds under `_NOTED`, commit by commit."""
    found: list[Any] = []

    def listener(session: Session) -> None:
        found.append(session.info.pop(_NOTED, None))

    event.listen(Session, "after_commit", listener)
    yield found
    event.remove(Session, "after_commit", listener)


def _note(value: str) -> Any:
    def write(session: AsyncSession) -> None:
        session.sync_session.info.setdefault(_NOTED, []).append(value)

    return write


def test_what_was_noted_reaches_the_listeners_at_commit_only(
    stand_in: AsyncSession, heard: list[Any]
) -> None:
    commit = SessionlessCommit(stand_in)
    ran: list[str] = []
    commit.note(_note("a"))
    commit.note(_note("b"))
    commit.after_commit(lambda: ran.append("effect"))
    # Nothing stays on the shared stand-in between calls, and nothing ran yet.
    assert stand_in.sync_session.info == {}
    assert (heard, ran) == ([], [])
    commit.committed()
    assert heard == [["a", "b"]]
    assert ran == ["effect"]
    assert stand_in.sync_session.info == {}
    assert not stand_in.in_transaction()  # the stand-in never began


def test_two_units_of_work_keep_their_own_notes(stand_in: AsyncSession, heard: list[Any]) -> None:
    first, second = SessionlessCommit(stand_in), SessionlessCommit(stand_in)
    first.note(_note("first"))
    second.note(_note("second"))
    second.committed()
    first.committed()
    assert heard == [["second"], ["first"]]


def test_a_dropped_one_runs_nothing(stand_in: AsyncSession, heard: list[Any]) -> None:
    ran: list[str] = []
    commit = SessionlessCommit(stand_in)
    commit.note(_note("a"))
    commit.after_commit(lambda: ran.append("effect"))
    del commit
    SessionlessCommit(stand_in).committed()  # another one's commit sees none of it
    assert heard == [None]
    assert ran == []


def test_a_failing_effect_does_not_stop_the_others(
    stand_in: AsyncSession, heard: list[Any]
) -> None:
    ran: list[str] = []
    commit = SessionlessCommit(stand_in)

    def fails() -> None:
        raise RuntimeError("boom")

    commit.after_commit(fails)
    commit.after_commit(lambda: ran.append("second"))
    commit.committed()
    assert ran == ["second"]
    assert stand_in.sync_session.info == {}
