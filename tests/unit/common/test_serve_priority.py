"""rumor_control serves below the alert path's CPU priority (services/common/serve.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from services import cli
from services.common import serve as serve_module
from services.common import settings as settings_module

# Run in a child: a niceness, once lowered, cannot be raised back without privilege.
_PROBE = (
    "import os, sys\n"
    "from services.common.serve import lower_priority\n"
    "kept = lower_priority(int(sys.argv[1]))\n"
    "print(kept, os.getpriority(os.PRIO_PROCESS, 0))\n"
)


def _probe(niceness: int, *, launched_at: int = 0) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(niceness)],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=(lambda: os.nice(launched_at)) if launched_at else None,
    )
    # The last line: the service's log line may come before it.
    return [int(word) for word in done.stdout.splitlines()[-1].split()]


def test_a_process_lowers_its_priority_to_the_niceness_asked() -> None:
    assert _probe(10) == [10, 10]


def test_a_niceness_the_launcher_set_higher_is_kept() -> None:
    assert _probe(5, launched_at=12) == [12, 12]


@pytest.mark.parametrize(
    ("service", "environment", "expected"),
    [
        ("rumor_control", {}, 10),
        ("rumor_control", {"AVISO_RUMOR_CONTROL_NICENESS": "0"}, 0),
        ("rumor_control", {"AVISO_RUMOR_CONTROL_NICENESS": "4"}, 4),
        ("router", {}, 0),
        ("intake", {}, 0),
    ],
)
def test_serve_gives_rumor_control_alone_a_lower_priority(
    monkeypatch: pytest.MonkeyPatch, service: str, environment: dict[str, str], expected: int
) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(serve_module, "serve", lambda *args, **kwargs: served.append(kwargs))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings_module._cached.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["serve", service])
    finally:
        settings_module._cached.cache_clear()
    assert result.exit_code == 0, result.output
    (kwargs,) = served
    assert kwargs["niceness"] == expected
