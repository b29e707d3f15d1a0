"""The JSON lines' writer: a loop turn's lines in one write per output, none lost.

Every test configures logging for real (`configure_logging(..., force=True)`) with the
terminal stream pointed at a recorder of writes that has a file descriptor (a regular
file, as a service's redirected stderr is) and, where it matters, a log file. A turn's
end is awaited by a callback queued after the lines: the loop runs its callbacks in
order, so the writer's, queued by the first line, has run by then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

import services.common.logging.setup as log_setup
import services.common.logging.writer as log_writer
from services.common.logging import REDACTED, configure_logging, get_logger


class Recorder:
    """A text stream that records each write and has a regular file's descriptor."""

    def __init__(self, backing: Path) -> None:
        self._backing = backing.open("w", encoding="utf-8")
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        return None

    def fileno(self) -> int:
        return self._backing.fileno()

    def isatty(self) -> bool:
        return False

    def events(self) -> list[str]:
        return [json.loads(line)["event"] for line in "".join(self.writes).splitlines()]

    def close(self) -> None:
        self._backing.close()


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    stream = Recorder(tmp_path / "stderr")
    try:
        yield stream
    finally:
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
        stream.close()


class PipeRecorder(Recorder):
    """A recorder whose file descriptor is a pipe's (a container's stderr, shared)."""

    def __init__(self, backing: Path, pipe_fd: int) -> None:
        super().__init__(backing)
        self._pipe_fd = pipe_fd

    def fileno(self) -> int:
        return self._pipe_fd


def configure(stream: Any, log_file: Path | None = None) -> logging.Handler:
    configure_logging("intake", fmt="json", stream=stream, log_file=log_file, force=True)
    (handler,) = log_setup._state.handlers
    return handler


async def turn_ended() -> None:
    """Return once the callbacks queued so far (the writer's among them) have run."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


def file_events(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text("utf-8").splitlines()]


async def test_a_turns_lines_are_written_after_it_in_one_write_per_output_in_order(
    recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_writes: list[bytes] = []
    real_write_all = log_writer._write_all

    def counting(fd: int, data: bytes) -> None:
        file_writes.append(data)
        real_write_all(fd, data)

    monkeypatch.setattr(log_writer, "_write_all", counting)
    log_file = tmp_path / "intake.log"
    configure(recorder, log_file)
    log = get_logger("tests.writer")
    for n in range(3):
        log.info(f"line.{n}", n=n)
    assert recorder.writes == []  # kept until the turn's callbacks are done
    assert file_writes == []

    await turn_ended()

    assert len(recorder.writes) == 1
    assert recorder.events() == ["line.0", "line.1", "line.2"]
    assert len(file_writes) == 1
    assert log_file.read_text("utf-8") == recorder.writes[0]  # the file gets what the stream gets


async def test_a_line_from_another_thread_is_written_at_once_after_the_kept_ones(
    recorder: Recorder,
) -> None:
    configure(recorder)
    log = get_logger("tests.writer")
    log.info("loop.first")
    log.info("loop.second")
    thread = threading.Thread(target=lambda: log.info("thread.line"))
    thread.start()
    thread.join()  # blocks the loop's turn: the thread's line cannot wait for its end

    assert recorder.events() == ["loop.first", "loop.second", "thread.line"]
    assert len(recorder.writes) == 2  # the kept lines together, then the thread's
    log.info("loop.third")
    await turn_ended()
    assert recorder.events() == ["loop.first", "loop.second", "thread.line", "loop.third"]


def test_a_line_outside_any_loop_is_written_at_once(recorder: Recorder) -> None:
    configure(recorder)
    get_logger("tests.writer").info("cli.line")
    assert recorder.events() == ["cli.line"]


async def test_an_error_is_written_at_once_after_the_kept_lines(
    recorder: Recorder, tmp_path: Path
) -> None:
    log_file = tmp_path / "intake.log"
    configure(recorder, log_file)
    log = get_logger("tests.writer")
    log.info("before.error")
    log.error("the.error", address="1 Main St")

    assert recorder.events() == ["before.error", "the.error"]
    assert file_events(log_file) == ["before.error", "the.error"]
    assert json.loads(recorder.writes[-1])["address"] == REDACTED


async def test_flush_writes_what_is_kept(recorder: Recorder) -> None:
    handler = configure(recorder)
    get_logger("tests.writer").info("kept.line")
    assert recorder.writes == []
    handler.flush()
    assert recorder.events() == ["kept.line"]
    await turn_ended()
    assert recorder.events() == ["kept.line"]  # the turn's end finds nothing more to write


async def test_shutdown_and_a_forced_reconfigure_lose_nothing(
    recorder: Recorder, tmp_path: Path
) -> None:
    first_file = tmp_path / "first.log"
    handler = configure(recorder, first_file)
    get_logger("tests.writer").info("before.shutdown")
    logging.shutdown([weakref.ref(handler)])  # what runs at exit: flush, then close
    assert recorder.events() == ["before.shutdown"]
    assert file_events(first_file) == ["before.shutdown"]

    second_file = tmp_path / "second.log"
    configure(recorder, second_file)
    get_logger("tests.writer").info("before.reconfigure")
    configure(recorder, tmp_path / "third.log")  # the old handler is closed
    assert file_events(second_file) == ["before.reconfigure"]
    assert recorder.events() == ["before.shutdown", "before.reconfigure"]


async def test_a_turn_that_logs_past_the_bound_writes_as_it_goes(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_writer, "BATCH_CHARS", 1000)
    configure(recorder)
    log = get_logger("tests.writer")
    for n in range(20):
        log.info("many.lines", n=n)
    assert recorder.writes, "nothing written though the turn passed the bound"
    assert all(len(write) <= 1000 + 200 for write in recorder.writes)
    await turn_ended()
    assert recorder.events() == ["many.lines"] * 20


async def test_kept_lines_go_to_the_stream_they_were_logged_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = Recorder(tmp_path / "first"), Recorder(tmp_path / "second")
    try:
        monkeypatch.setattr("sys.stderr", first)
        configure(None)  # the current sys.stderr at each line, as pytest swaps it
        get_logger("tests.writer").info("for.first")
        monkeypatch.setattr("sys.stderr", second)
        get_logger("tests.writer").info("for.second")
        assert first.events() == ["for.first"]  # written before the swap's first line
        await turn_ended()
        assert second.events() == ["for.second"]
    finally:
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
        first.close()
        second.close()


def test_a_crash_in_the_loop_is_written_with_the_lines_before_it(recorder: Recorder) -> None:
    configure(recorder)
    log = get_logger("tests.writer")

    def crash() -> None:
        log.info("before.crash")
        raise RuntimeError("boom")

    loop = uvloop.new_event_loop()
    try:
        loop.call_soon(crash)  # the loop logs the exception (ERROR) ...
        loop.call_soon(loop.stop)  # ... and stops in the same turn: no later turn writes
        loop.run_forever()
        assert recorder.events()[0] == "before.crash"
        assert "Exception in callback" in recorder.events()[1]
    finally:
        loop.close()


def test_pieces_for_a_pipe_end_at_lines_and_stay_within_pipe_buf() -> None:
    lines = [f"{'x' * 1500}\n", f"{'ñ' * 1000}\n", "short\n", f"{'y' * 5000}\n", "last\n"]
    pieces = log_writer._pieces(lines)
    assert "".join(pieces) == "".join(lines)
    assert all(piece.endswith("\n") for piece in pieces)
    for piece in pieces:
        if piece.count("\n") > 1:
            assert len(piece.encode("utf-8")) <= log_writer._PIPE_BUF
    assert f"{'y' * 5000}\n" in pieces  # longer than PIPE_BUF: a piece of its own


async def test_a_pipe_gets_a_batch_in_pieces_of_whole_lines_within_pipe_buf(
    tmp_path: Path,
) -> None:
    read_end, write_end = os.pipe()
    piped = PipeRecorder(tmp_path / "unused", write_end)
    try:
        configure(piped)
        for n in range(40):
            get_logger("tests.writer").info("piped.line", n=n, padding="p" * 100)
        await turn_ended()
        assert [json.loads(line)["n"] for line in "".join(piped.writes).splitlines()] == list(
            range(40)
        )
        assert len(piped.writes) > 1
        assert all(write.endswith("\n") for write in piped.writes)
        assert all(len(write.encode()) <= log_writer._PIPE_BUF for write in piped.writes)
    finally:
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
        piped.close()
        os.close(read_end)
        os.close(write_end)
