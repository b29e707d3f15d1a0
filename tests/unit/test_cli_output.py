"""`aviso up` prints the services' log lines and the demo's steps from several threads:
each line must reach the terminal in one write, or two lines can interleave mid-line."""

from __future__ import annotations

import io

import pytest
import typer

from services import local_stack
from services.demo import STEPS, _Story


class _Writes(io.StringIO):
    """A stdout that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> _Writes:
    out = _Writes()
    # Where typer.echo finds standard output when given no file (in its own module).
    monkeypatch.setitem(typer.echo.__globals__, "_default_text_stdout", lambda: out)
    return out


def test_a_service_line_is_one_write(stdout: _Writes) -> None:
    local_stack._say("router", "info    alert.triggered")
    assert stdout.writes == ["[router] info    alert.triggered\n"]


def test_a_demo_step_is_one_write(stdout: _Writes) -> None:
    story = _Story({}, "test-correlation")
    story.http.close()  # printing a step needs no HTTP
    story.say("field office submitted a notice")
    assert len(stdout.writes) == 1
    assert stdout.writes[0].startswith(f"[demo] 1/{STEPS} field office submitted a notice  (+")
