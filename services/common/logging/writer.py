"""The JSON lines' handler: lines written a loop turn at a time, not a write and flush each.

A service answers a request or applies a notice in one turn of its event loop, and
logs a line or a few while doing it. Written as they come, each line is two Python
text-layer writes, two flushes and two system calls (stream and file) inside the
request. Here a line logged on the loop's thread is kept, and the first of a turn asks
the loop (`call_soon`) to write them all once the turn's callbacks are done: one write
per output for the turn, in order.

Nothing waits that should not: a line logged with no running loop (the CLI, start-up,
shutdown, another thread) is written at once after whatever is kept, so the order holds;
an ERROR or worse is written at once with what is kept before it, so a process that dies
after logging why has it on disk; a turn that logs more than `BATCH_CHARS` writes them as
it goes. `flush()` and `close()` (`logging.shutdown` at exit, a `force=True`
reconfigure) write what is kept. What a SIGKILL can take is the INFO and WARNING lines
of the turn it stops, which were to be written when that turn ended. A stream with no
file descriptor (a test's StringIO) is written at once: there is no system call to save,
and its reader may look within the same turn.

The file is opened with `O_APPEND` and written with `os.write` (one system call, bytes):
several worker processes of a service share it, and each write, a whole batch of whole
lines, goes to the end of the file in one piece (Linux writes a regular file under the
inode's lock, whatever the size; `PIPE_BUF` only bounds pipes). The terminal stream is
often a pipe shared by the workers (a container's stderr): on a pipe or socket a batch is
written in pieces of at most `PIPE_BUF` bytes, each ending at a line's end, so two
workers' lines still interleave only between lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import stat
import sys
import traceback

# asyncio's own look-up of this thread's running loop (listed in asyncio.events.__all__):
# None outside a loop, where `get_running_loop` raises.
from asyncio import _get_running_loop
from pathlib import Path
from typing import TextIO

__all__ = ["BATCH_CHARS", "JsonLinesHandler"]

# A turn that logs more than this (characters) writes what it has so far at once.
BATCH_CHARS = 64 * 1024

# Writes of at most this many bytes to a pipe are never split by another writer's.
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)

# What a stream is, which decides how its lines are written: in memory at once (see
# above); a regular file a batch in one write; a pipe, socket or terminal in pieces of at
# most PIPE_BUF bytes.
_IN_MEMORY, _REGULAR_FILE, _SHARED_CHANNEL = "in memory", "regular file", "shared channel"

_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class JsonLinesHandler(logging.Handler):
    """Write each record, rendered once, to the terminal stream and/or the log file.

    The stream is the given one, or whatever `sys.stderr` is at emit time (pytest swaps
    it per test); stderr, not stdout: CLI commands print their results (a new token) on
    stdout. Kept lines are written to the stream they were logged for.
    """

    def __init__(
        self, stream: TextIO | None, log_file: Path | None, *, to_stream: bool = True
    ) -> None:
        super().__init__()
        self._stream = stream
        self._to_stream = to_stream
        self._fd: int | None = None
        self._file_whole = True  # a regular file takes a batch in one write
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(log_file, _APPEND_FLAGS, 0o666)
            self._file_whole = stat.S_ISREG(os.fstat(self._fd).st_mode)
        self._kept: list[str] = []
        self._kept_chars = 0
        self._kept_for: TextIO | None = None  # the stream the kept lines were logged for
        self._turn_of: asyncio.AbstractEventLoop | None = None  # the loop asked to write
        self._closed = False
        self._checked_stream: TextIO | None = None
        self._stream_kind = _IN_MEMORY

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the line for the end of the loop's turn, or write it at once (see above)."""
        # Called under the handler's lock (`Handler.handle`), as are flush() and close().
        try:
            self._put(self.format(record) + "\n", record.levelno)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def emit_line(self, line: str, levelno: int) -> None:
        """What `handle` then `emit` do for a record that `format`s to `line`, without the
        record: for a line rendered already (own_lines.py), which no filter looks at."""
        with self.lock if self.lock is not None else contextlib.nullcontext():
            try:
                self._put(line + "\n", levelno)
            except RecursionError:
                raise
            except Exception:  # no record to hand to handleError: report as it would
                _report_write_error()

    def _put(self, line: str, levelno: int) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        if stream is not self._checked_stream:
            self._check(stream)
        loop = _get_running_loop()  # this thread's, if any: None costs no exception
        if (
            loop is None
            or self._closed
            or levelno >= logging.ERROR
            or (self._to_stream and self._stream_kind is _IN_MEMORY)
        ):
            self._write_kept()  # first, so the order holds
            self._write(stream, [line])
            return
        if self._kept and (loop is not self._turn_of or stream is not self._kept_for):
            self._write_kept()  # another loop's turn, or a stream swapped since
        self._keep(line, stream, loop)

    def flush(self) -> None:
        """Write the kept lines now (at exit, before a reconfigure, when asked)."""
        with self.lock if self.lock is not None else contextlib.nullcontext():
            self._write_kept()
            stream = self._target()
            if self._to_stream and hasattr(stream, "flush"):
                stream.flush()

    def close(self) -> None:
        with self.lock if self.lock is not None else contextlib.nullcontext():
            try:
                self._write_kept()
            finally:
                self._closed = True
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
        super().close()

    # --- keeping --------------------------------------------------------------------

    def _target(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def _keep(self, line: str, stream: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        if self._turn_of is not loop:
            loop.call_soon(self._end_of_turn, loop)
            self._turn_of = loop
        self._kept.append(line)
        self._kept_for = stream
        self._kept_chars += len(line)
        if self._kept_chars > BATCH_CHARS:
            self._write_kept()  # the turn goes on: its later lines start a new batch

    def _end_of_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop's callback: its turn is over, write what it logged."""
        with self.lock if self.lock is not None else contextlib.nullcontext():
            if self._turn_of is not loop:
                return  # written already: another loop's line or a thread's came between
            self._turn_of = None
            try:
                self._write_kept()
            except Exception:  # no record to hand to handleError: report as it would
                _report_write_error()

    def _write_kept(self) -> None:
        if not self._kept:
            return
        lines, stream = self._kept, self._kept_for
        self._kept, self._kept_chars, self._kept_for = [], 0, None
        self._write(stream if stream is not None else self._target(), lines)

    # --- writing --------------------------------------------------------------------

    def _write(self, stream: TextIO, lines: list[str]) -> None:
        """Write `lines` to the stream and the file: each in as few writes as it allows."""
        if self._to_stream:
            self._write_stream(stream, lines)
        if self._fd is not None:
            if self._file_whole:
                _write_all(self._fd, "".join(lines).encode("utf-8", "backslashreplace"))
            else:
                for piece in _pieces(lines):
                    _write_all(self._fd, piece.encode("utf-8", "backslashreplace"))

    def _check(self, stream: TextIO) -> None:
        self._checked_stream, self._stream_kind = stream, _kind_of(stream)

    def _write_stream(self, stream: TextIO, lines: list[str]) -> None:
        if stream is not self._checked_stream:
            self._check(stream)  # kept lines go to the stream they were logged for
        if self._stream_kind is _SHARED_CHANNEL:
            for piece in _pieces(lines):
                stream.write(piece)
                stream.flush()
        else:
            stream.write(lines[0] if len(lines) == 1 else "".join(lines))
            stream.flush()


def _kind_of(stream: TextIO) -> str:
    """In memory (no file descriptor), a regular file, or a pipe, socket or terminal."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return _IN_MEMORY
    return _REGULAR_FILE if stat.S_ISREG(mode) else _SHARED_CHANNEL


def _pieces(lines: list[str]) -> list[str]:
    """The lines joined into pieces of at most `PIPE_BUF` bytes, each ending a line.

    A line longer than that on its own is a piece of its own (as it was before batching).
    """
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        length = len(line) if line.isascii() else len(line.encode("utf-8", "backslashreplace"))
        if current and size + length > _PIPE_BUF:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        pieces.append("".join(current))
    return pieces


def _write_all(fd: int, data: bytes) -> None:
    """One `write` normally; a short one (a full disk, a signal) goes on from where it was."""
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)[written:]
        while view:
            view = view[os.write(fd, view) :]


def _report_write_error() -> None:
    """What `Handler.handleError` prints, for a failure outside any record's emit."""
    if logging.raiseExceptions and sys.stderr:
        try:
            sys.stderr.write("--- Logging error ---\n")
            traceback.print_exc(file=sys.stderr)
        except Exception:  # noqa: S110 - as handleError: never raise from reporting
            pass
