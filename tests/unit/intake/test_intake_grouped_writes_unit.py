"""GroupedWrites' choices with its two sends faked: who goes alone, who waits, what a group
takes (services/intake/grouped_writes.py; the real thing: tests/integration/intake/
test_intake_grouped_writes.py). No timing: a held send is released by the test."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from services.intake import grouped_writes
from services.intake.grouped_writes import GroupedWrites


class _Sends:
    """The two sends, recorded; a lone send waits until the test releases it."""

    def __init__(self) -> None:
        self.alone: list[tuple[str, Any]] = []
        self.groups: list[tuple[str, list[Any]]] = []
        self.release = asyncio.Event()
        self.fail_groups = False

    async def fetchrow(self, _engine: Any, sql: str, arguments: Sequence[Any]) -> Any:
        self.alone.append((sql, arguments[0]))
        await self.release.wait()
        return {"sql": sql, "value": arguments[0]}

    async def fetchmany(self, _engine: Any, sql: str, arguments: Sequence[Sequence[Any]]) -> Any:
        self.groups.append((sql, [each[0] for each in arguments]))
        if self.fail_groups:
            raise RuntimeError("one execution failed")
        return [{"sql": sql, "value": each[0]} for each in arguments]


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> _Sends:
    fake = _Sends()
    monkeypatch.setattr(grouped_writes, "fetchrow_borrowed", fake.fetchrow)
    monkeypatch.setattr(grouped_writes, "fetchmany_borrowed", fake.fetchmany)
    return fake


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_statement_with_a_writer_free_goes_alone_at_once(sends: _Sends) -> None:
    writes = GroupedWrites(None, writers=2)  # type: ignore[arg-type]
    sends.release.set()

    row = await writes.fetchrow("Q", ["a"])

    assert row == {"sql": "Q", "value": "a"}
    assert sends.alone == [("Q", "a")]
    assert (writes.waited, writes.grouped, sends.groups) == (0, 0, [])


async def test_the_waiting_go_as_one_group_in_their_order_of_reference(sends: _Sends) -> None:
    writes = GroupedWrites(None, writers=1)  # type: ignore[arg-type]
    held = asyncio.ensure_future(writes.fetchrow("Q", ["held"]))
    await _settle()
    queued = [
        asyncio.ensure_future(writes.fetchrow("Q", [value], order=(value,)))
        for value in ("c", "a", "b")
    ]
    await _settle()
    assert writes.waiting == 3

    sends.release.set()
    rows = await asyncio.gather(held, *queued)

    assert [row["value"] for row in rows] == ["held", "c", "a", "b"]  # each its own row
    assert sends.groups == [("Q", ["a", "b", "c"])]
    assert (writes.waited, writes.grouped) == (3, 3)


async def test_a_group_takes_one_sql_and_at_most_most(sends: _Sends) -> None:
    writes = GroupedWrites(None, writers=1, most=2)  # type: ignore[arg-type]
    held = asyncio.ensure_future(writes.fetchrow("Q", ["held"]))
    await _settle()
    queued = [
        asyncio.ensure_future(writes.fetchrow(sql, [value]))
        for sql, value in (("Q", "1"), ("R", "2"), ("Q", "3"), ("Q", "4"))
    ]
    await _settle()

    sends.release.set()
    rows = await asyncio.gather(held, *queued)

    assert [row["value"] for row in rows] == ["held", "1", "2", "3", "4"]
    # Q's first two, then what is left in order: R alone (a group of one), then Q's last.
    assert sends.groups == [("Q", ["1", "3"])]
    assert sends.alone == [("Q", "held"), ("R", "2"), ("Q", "4")]


async def test_a_failed_group_sends_each_statement_alone(sends: _Sends) -> None:
    writes = GroupedWrites(None, writers=1)  # type: ignore[arg-type]
    sends.fail_groups = True
    held = asyncio.ensure_future(writes.fetchrow("Q", ["held"]))
    await _settle()
    queued = [asyncio.ensure_future(writes.fetchrow("Q", [value])) for value in ("1", "2")]
    await _settle()

    sends.release.set()
    rows = await asyncio.gather(held, *queued)

    assert [row["value"] for row in rows] == ["held", "1", "2"]
    assert sends.groups == [("Q", ["1", "2"])]
    assert sorted(value for _, value in sends.alone) == ["1", "2", "held"]
    assert writes.grouped == 0


async def test_a_writer_is_free_again_once_nothing_waits(sends: _Sends) -> None:
    writes = GroupedWrites(None, writers=1)  # type: ignore[arg-type]
    sends.release.set()
    await writes.fetchrow("Q", ["1"])
    await writes.fetchrow("Q", ["2"])

    assert writes.waited == 0
    assert sends.alone == [("Q", "1"), ("Q", "2")]
