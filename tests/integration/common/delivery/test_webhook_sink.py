"""The local webhook sink (deploy/local/sinks.py) under concurrent load, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from deploy.local.sinks import WebhookSink
from services.common.delivery import DeliveryError, WebhookSender

SECRET = b"sink-secret"


async def test_concurrent_deliveries_are_each_recorded_once(tmp_path: Path) -> None:
    out_file = tmp_path / "sinks" / "webhooks.jsonl"
    sender = WebhookSender(secrets=[SECRET], max_connections=500)
    with WebhookSink(secrets=[SECRET], out_file=out_file) as sink:
        try:
            statuses = await asyncio.gather(
                *(
                    sender.send(sink.url(f"/liaisons/{i}"), {"n": i}, delivery_id=f"d-{i}")
                    for i in range(500)
                )
            )
        finally:
            await sender.close()
        received = await asyncio.to_thread(sink.wait_for, lambda items: len(items) >= 500, 60)

    assert statuses == [204] * 500
    assert len(received) == 500
    assert Counter(item["delivery_id"] for item in received) == {f"d-{i}": 1 for i in range(500)}
    assert all(item["path"] == f"/liaisons/{item['payload']['n']}" for item in received)
    assert all(item["signature_valid"] is True for item in received)
    lines = [json.loads(line) for line in out_file.read_text("utf-8").splitlines()]
    assert sorted(line["delivery_id"] for line in lines) == sorted(f"d-{i}" for i in range(500))


async def test_fail_first_answers_503_then_records(tmp_path: Path) -> None:
    sender = WebhookSender(secrets=[b"other-secret"])
    with WebhookSink(secrets=[SECRET], fail_first=2) as sink:
        try:
            for i in range(2):
                with pytest.raises(DeliveryError) as caught:
                    await sender.send(sink.url(), {"i": i}, delivery_id="d")
                assert caught.value.reason == "http_5xx"
            assert await sender.send(sink.url(), {"i": 2}, delivery_id="d") == 204
        finally:
            await sender.close()
        received = sink.received

    assert len(received) == 1  # refused requests are not recorded
    assert received[0]["signature_valid"] is False  # signed with a secret the sink lacks
    assert received[0]["payload"] == {"i": 2}


async def test_url_is_known_before_start_and_stop_frees_the_port() -> None:
    sink = WebhookSink()
    url = sink.url("/x")
    assert url.startswith("http://127.0.0.1:")
    with sink:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=b"not json") as response:
                assert response.status == 204
            async with session.get(url) as response:
                assert response.status == 405
    assert sink.received[0]["payload"] == "not json"
    # Stopped: the port no longer answers.
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(url, data=b"{}") as response:
                refused = False
        except aiohttp.ClientConnectionError:
            refused = True
    assert refused
