"""`/v1/ops/dead-letters` on real Kafka: ops list the DLQ (no payloads) and replay a letter
to its original topic with its original message id."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.dlq import DeadLettered, b64encode
from schemas.topics import DLQ
from tests.integration.api_apps import router_running
from tests.support.kafka_io import produce_raw, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET_PAYLOAD = b'{"summary": "only the original topic may carry this"}'


def _letter(topic: str, group: str) -> DeadLettered:
    return DeadLettered(
        dead_letter_id=uuid.uuid4(),
        original_topic=topic,
        original_partition=0,
        original_offset=7,
        original_key=b64encode(b"key-1"),
        original_headers=(("ce_id", "message-1"), ("ce_type", "notice.updated")),
        original_value=b64encode(SECRET_PAYLOAD),
        error_type="ValueError",
        error_message="cannot apply this notice",
        attempts=3,
        consumer_group=group,
        failed_at=datetime.now(UTC),
    )


async def test_ops_list_and_replay_a_dead_letter(
    tmp_path: Path, pg_database: str, kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.ops-dlq"), unique("ops-dlq")
    letter = _letter(topic, group)
    await produce_raw(
        kafka_bootstrap,
        DLQ,
        [(str(letter.dead_letter_id).encode(), letter.model_dump_json().encode(), [])],
    )
    async with router_running(
        tmp_path, database_url=pg_database, kafka_bootstrap=kafka_bootstrap
    ) as router:
        listed = await router.client.get("/v1/ops/dead-letters", headers=router.auth("ops"))
        assert listed.status_code == 200, listed.text
        (item,) = [i for i in listed.json()["items"] if i["original_topic"] == topic]
        assert item["dead_letter_id"] == str(letter.dead_letter_id)
        assert (item["consumer_group"], item["attempts"]) == (group, 3)
        assert item["error_message"] == "cannot apply this notice"
        assert b"only the original topic" not in listed.content  # never the payload

        unknown = await router.client.post(
            "/v1/ops/dead-letters/replay",
            json={"ids": [str(letter.dead_letter_id), str(uuid.uuid4())]},
            headers=router.auth("ops"),
        )
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/problem+json")

        replayed = await router.client.post(
            "/v1/ops/dead-letters/replay",
            json={"ids": [str(letter.dead_letter_id)]},
            headers=router.auth("ops"),
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == {"replayed": [str(letter.dead_letter_id)]}

        refused = await router.client.get("/v1/ops/dead-letters", headers=router.auth("admin"))
        assert refused.status_code == 403

    records = await read_topic(kafka_bootstrap, topic, until=lambda rs: len(rs) >= 1)
    assert len(records) == 1, "the refused replay (an unknown id) republished nothing"
    (record,) = records
    assert (record.key, record.value) == (b"key-1", SECRET_PAYLOAD)
    headers = dict(record.headers)
    assert headers["ce_id"] == b"message-1"
    assert headers["aviso_replayed_from"] == str(letter.dead_letter_id).encode()
