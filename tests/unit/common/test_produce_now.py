"""The produce request written in the caller's turn, only under the aiokafka it was written for."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from services.common import produce_now

ROOT = Path(__file__).resolve().parents[3]


class Untouchable:
    """A producer any look inside of fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"looked at the producer's {name}")


def test_the_pinned_aiokafka_is_the_one_the_sender_s_step_was_written_for() -> None:
    # Bumping the pin without checking produce_now.py against the new sender fails here.
    pins = re.findall(r'"aiokafka==([^"]+)"', (ROOT / "pyproject.toml").read_text("utf-8"))
    assert pins == [produce_now.WRITTEN_FOR]


def test_under_another_aiokafka_everything_is_left_to_its_own_sender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(produce_now, "_FITS", False)
    producer = Untouchable()
    assert produce_now.append_batches(producer, [("topic", 0, object())]) is None
    assert produce_now.write_now(producer) is False
