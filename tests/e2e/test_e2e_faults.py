"""Fault behaviour of intake as a real process: PostgreSQL and Kafka stopped and restarted.

- PostgreSQL down: intake answers 503 problem+json promptly (no hang), reports not
  ready, and accepts again once the cluster is back; every notice acknowledged with
  201 is readable afterwards and its `notice.received` reached Kafka exactly once in
  effect (one distinct `ce_id` per notice).
- Kafka down: intake still answers 201 (the outbox decouples it from the broker);
  after the broker restarts on the same port and data directory every queued event
  is published, none lost.
- PostgreSQL hung (SIGSTOP, the port open but silent): intake should still answer
  503 within a bound (statements time out: `command_timeout` on every connection).

The figures printed (time to 503, time to recover, outbox drain time) are
observations on this machine, not assertions; the bounds asserted are sanity limits.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord

from schemas.topics import NOTICES
from services.common.problems import PROBLEM_JSON
from tests.e2e.conftest import FaultIntake, FaultKafka, FaultPostgres
from tests.integration.intake.intake_support import notice_body
from tests.support.kafka_io import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

# Sanity limits, far above what a healthy run needs: they catch a hang, not a slowdown.
ANSWER_LIMIT_S = 15.0
RECOVERY_LIMIT_S = 30.0
DRAIN_LIMIT_S = 60.0


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode("utf-8")
    return None


async def _received_events(
    bootstrap: str, notice_ids: set[str], *, timeout: float = 30.0
) -> dict[str, list[ConsumerRecord]]:
    """The `notice.received` records on the notices topic for `notice_ids`, by notice id."""
    wanted = {notice_id.encode() for notice_id in notice_ids}

    def received(records: list[ConsumerRecord]) -> dict[str, list[ConsumerRecord]]:
        found: dict[str, list[ConsumerRecord]] = defaultdict(list)
        for record in records:
            if _header(record, "ce_type") == "notice.received":
                found[bytes(record.key).decode()].append(record)
        return found

    records = await read_topic(
        bootstrap,
        NOTICES,
        until=lambda records: set(received(records)) >= notice_ids,
        timeout=timeout,
        key_filter=lambda key: key in wanted,
    )
    return received(records)


def _assert_each_received_once(
    events: dict[str, list[ConsumerRecord]], notice_ids: set[str]
) -> None:
    missing = notice_ids - set(events)
    assert not missing, f"acknowledged with 201 but never on {NOTICES}: {sorted(missing)}"
    for notice_id in notice_ids:
        ce_ids = {_header(record, "ce_id") for record in events[notice_id]}
        # A relay retry may repeat a record (same ce_id, absorbed by consumers' inbox);
        # two distinct ce_ids would be two receptions of one notice.
        assert len(ce_ids) == 1, f"{notice_id}: {len(ce_ids)} distinct notice.received events"


def _assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


async def _assert_readable(intake: FaultIntake, accepted: dict[str, str]) -> None:
    """Every accepted notice (id -> reference) reads back through the API."""
    for notice_id, reference in accepted.items():
        response = await intake.read(notice_id)
        assert response.status_code == 200, f"{notice_id}: {response.status_code} {response.text}"
        assert response.json()["reference"] == reference


async def _accept(intake: FaultIntake, body: dict[str, Any], accepted: dict[str, str]) -> None:
    response, _ = await intake.submit(body)
    assert response.status_code == 201, response.text
    accepted[response.json()["id"]] = body["reference"]


async def test_postgres_outage_answers_503_and_loses_nothing_acknowledged(
    fault_intake: FaultIntake, fault_postgres: FaultPostgres, fault_kafka: FaultKafka
) -> None:
    intake = fault_intake
    accepted: dict[str, str] = {}  # notice id -> reference, everything answered 201
    for _ in range(3):
        await _accept(intake, notice_body(), accepted)

    began = time.monotonic()
    await asyncio.to_thread(fault_postgres.stop)
    stopped_in = time.monotonic() - began

    # While the database is down: a prompt 503 problem with Retry-After, never a hang.
    refused: list[dict[str, Any]] = []
    answer_times: list[float] = []
    for _ in range(3):
        body = notice_body()
        response, elapsed = await intake.submit(body)
        problem = _assert_problem(response, 503)
        assert response.headers.get("retry-after"), response.headers
        assert "correlation_id" in problem
        assert elapsed < ANSWER_LIMIT_S, f"503 took {elapsed:.1f} s"
        answer_times.append(elapsed)
        refused.append(body)
    read_response = await intake.read(next(iter(accepted)))
    _assert_problem(read_response, 503)
    ready, ready_elapsed = await intake.ready()
    _assert_problem(ready, 503)
    assert ready.json()["checks"]["database"].startswith("unavailable"), ready.json()
    assert ready_elapsed < ANSWER_LIMIT_S

    began = time.monotonic()
    await asyncio.to_thread(fault_postgres.restart)
    restarted_in = time.monotonic() - began

    # A client retrying one submission until it is accepted (same reference: idempotent).
    probe = notice_body()
    attempts = 0
    recovered_in: float | None = None
    began = time.monotonic()
    while time.monotonic() - began < RECOVERY_LIMIT_S:
        attempts += 1
        response, _ = await intake.submit(probe)
        if response.status_code == 201:
            recovered_in = time.monotonic() - began
            accepted[response.json()["id"]] = probe["reference"]
            break
        _assert_problem(response, 503)
        await asyncio.sleep(0.2)
    assert recovered_in is not None, f"intake did not accept again within {RECOVERY_LIMIT_S} s"

    # What was refused with 503 was not recorded: resubmitting it is a first submission.
    for body in refused:
        await _accept(intake, body, accepted)
    for _ in range(2):
        await _accept(intake, notice_body(), accepted)
    ready, _ = await intake.ready()
    assert ready.status_code == 200, ready.text

    await _assert_readable(intake, accepted)
    began = time.monotonic()
    events = await _received_events(fault_kafka.bootstrap, set(accepted))
    events_in = time.monotonic() - began
    _assert_each_received_once(events, set(accepted))

    logged = [record.get("event") for record in intake.process.log_records()]
    assert "http.database_unavailable" in logged
    assert "http.unhandled_error" not in logged, "an outage was logged as a bug"

    print(
        "\n[fault: postgres] "
        f"pg_ctl stop {stopped_in:.2f} s; "
        f"503 answered in {min(answer_times):.3f}-{max(answer_times):.3f} s "
        f"(first {answer_times[0]:.3f} s); /internal/ready 503 in {ready_elapsed:.3f} s; "
        f"restart {restarted_in:.2f} s; accepting again {recovered_in:.3f} s after restart "
        f"({attempts} attempt(s)); {len(accepted)} notices acknowledged, all readable, "
        f"all on {NOTICES} once (topic read {events_in:.2f} s; "
        f"{sum(len(v) for v in events.values())} records)"
    )


async def test_kafka_outage_queues_in_outbox_and_publishes_after_restart(
    fault_intake: FaultIntake, fault_kafka: FaultKafka
) -> None:
    intake = fault_intake
    before: dict[str, str] = {}
    for _ in range(2):
        await _accept(intake, notice_body(), before)
    # The relay works and its producer is connected before the broker goes away.
    _assert_each_received_once(
        await _received_events(fault_kafka.bootstrap, set(before)), set(before)
    )

    began = time.monotonic()
    await asyncio.to_thread(fault_kafka.stop)
    stopped_in = time.monotonic() - began

    during: dict[str, str] = {}
    latencies: list[float] = []
    for _ in range(5):
        body = notice_body()
        response, elapsed = await intake.submit(body)
        assert response.status_code == 201, response.text
        assert elapsed < ANSWER_LIMIT_S, f"201 took {elapsed:.1f} s with Kafka down"
        during[response.json()["id"]] = body["reference"]
        latencies.append(elapsed)
    ready, ready_elapsed = await intake.ready()
    ready_while_down = ready.status_code
    # Give the relay time to try (and fail): the events wait in the outbox, not lost.
    await asyncio.sleep(2.0)
    pending_while_down = await intake.outbox_pending()
    assert pending_while_down == len(during), f"outbox pending {pending_while_down}"

    began = time.monotonic()
    await asyncio.to_thread(fault_kafka.restart)
    restarted_in = time.monotonic() - began

    began = time.monotonic()
    drained_in: float | None = None
    while time.monotonic() - began < DRAIN_LIMIT_S:
        if await intake.outbox_pending() == 0:
            drained_in = time.monotonic() - began
            break
        await asyncio.sleep(0.1)
    assert drained_in is not None, f"outbox not drained {DRAIN_LIMIT_S} s after Kafka restart"

    everything = before | during
    events = await _received_events(fault_kafka.bootstrap, set(everything))
    _assert_each_received_once(events, set(everything))
    await _assert_readable(intake, everything)
    # Accepting still works end to end after the restart.
    after: dict[str, str] = {}
    await _accept(intake, notice_body(), after)
    began = time.monotonic()
    _assert_each_received_once(
        await _received_events(fault_kafka.bootstrap, set(after)), set(after)
    )
    fresh_event_in = time.monotonic() - began

    print(
        "\n[fault: kafka] "
        f"broker stop {stopped_in:.2f} s; 201 with broker down in "
        f"{min(latencies):.3f}-{max(latencies):.3f} s; /internal/ready {ready_while_down} "
        f"with broker down ({ready_elapsed:.2f} s); {pending_while_down:.0f} events queued; "
        f"broker restart {restarted_in:.2f} s; outbox drained {drained_in:.2f} s after the "
        f"broker answered metadata; {len(everything)} events on {NOTICES}, none lost; "
        f"a new notice's event read back {fresh_event_in:.2f} s after its 201"
    )


async def test_hung_postgres_answers_503_instead_of_hanging(
    fault_intake: FaultIntake, fault_postgres: FaultPostgres
) -> None:
    intake = fault_intake
    accepted: dict[str, str] = {}
    for _ in range(2):  # the pool now holds open connections, as in production
        await _accept(intake, notice_body(), accepted)

    with fault_postgres.frozen():
        # First, while the pool still holds established connections: a request that
        # checks one out is the one that hangs. (A fresh connection fails after asyncpg's
        # 5 s connect timeout, so the order matters.)
        began = time.monotonic()
        try:
            response = await intake.client.post(
                "/v1/notices",
                json=notice_body(),
                headers=intake.auth("field_office"),
                timeout=ANSWER_LIMIT_S,
            )
        except httpx.TimeoutException:
            raise AssertionError(
                f"POST /v1/notices hung for {ANSWER_LIMIT_S:.0f} s against a frozen database"
            ) from None
        answered_in = time.monotonic() - began
        _assert_problem(response, 503)
        ready, _ = await intake.ready()
        _assert_problem(ready, 503)

    await _accept(intake, notice_body(), accepted)
    await _assert_readable(intake, accepted)
    print(f"\n[fault: postgres frozen] 503 answered in {answered_in:.2f} s")
