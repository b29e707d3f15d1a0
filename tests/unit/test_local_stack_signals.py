"""`aviso up` (`make run`) stops everything on the first SIGINT or SIGTERM: a second one,
which one stop often brings, must not cut the stopping short."""

from __future__ import annotations

import os
import signal

import pytest

from services import local_stack


def test_the_first_stop_signal_stops_the_stack_and_later_ones_cannot_cut_it_short() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            local_stack._interrupt(signal.SIGTERM, None)
        # A second signal (make passing its own on, Ctrl-C reaching the whole group) finds
        # nothing to interrupt while Kafka and Kannel are being stopped.
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the test goes on
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
