"""Ports picked for local servers stay out of the range outgoing connections take theirs from."""

from __future__ import annotations

import socket

import pytest

import deploy.local.common as common
from deploy.local.common import LOOPBACK, ephemeral_range, free_port


def test_a_picked_port_is_below_the_ephemeral_range_and_bindable() -> None:
    low, _high = ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert port < low
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, port))  # raises if it was not free


def test_a_port_in_use_or_excluded_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        excluded = taken + 1
        offers = iter([taken, excluded, taken, excluded + 1])
        monkeypatch.setattr(common, "ephemeral_range", lambda: (max(taken, excluded) + 2, 65000))
        monkeypatch.setattr(common.random, "randrange", lambda _a, _b: next(offers))
        assert free_port(exclude=frozenset({excluded})) == excluded + 1


def test_with_no_room_below_the_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "ephemeral_range", lambda: (10_500, 60999))
    port = free_port()
    assert 1 <= port <= 65535
