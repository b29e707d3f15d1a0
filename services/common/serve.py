"""Run one service's HTTP app (and with it its consumers and relay) under uvicorn.

One process by default. With `workers > 1` (intake's `AVISO_INTAKE_WORKERS`) the process
that was started becomes a small supervisor of that many worker processes serving the
same port:

- each worker is a fresh interpreter (`spawn`) that sets up logging, builds the app and
  serves it on a socket of its own bound with SO_REUSEPORT, so the kernel spreads new
  connections over the workers that are listening (a worker listens only once its
  lifespan has started: a starting worker gets no connection it cannot serve);
- worker 0 leads: a composition root asks `worker_role().leads` and registers the work
  that must run once per group (timers, sweepers, sealers, its consumers) only there;
  everything per request, and the outbox relay (relays coordinate through leases), runs
  in every worker;
- Prometheus metrics are kept per worker in files of one directory made fresh at each
  start (`<var_dir>/run/<service>-<port>/metrics`, prometheus-client's multiprocess mode),
  and any worker's `/metrics` reports the sum of all of them;
- SIGTERM or Ctrl-C stops the followers first and the leader last (each one gracefully,
  as a single process does), so the leader's last steps (the audit sealer's final round)
  see every request the group answered. A worker that dies on its own stops the group
  with an error: the service manager restarts it whole, as it would a single process. A
  supervisor killed outright (SIGKILL) takes its workers with it (each stops gracefully).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.common.logging import configure_logging, get_logger
from services.common.metrics import MULTIPROCESS_DIR_ENV
from services.common.settings import CommonSettings

__all__ = [
    "OneWriteHttpProtocol",
    "QuietServer",
    "WorkerRole",
    "forwarded_headers",
    "serve",
    "server_config",
    "worker_role",
]

log = get_logger(__name__)

# prctl(2): a signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1

# What a worker stopping gracefully may take beyond the grace uvicorn gives its requests:
# the runtime's own stop (consumers, workers, the relay's last round, pools).
_STOP_MARGIN_S = 15.0


@dataclass(frozen=True)
class WorkerRole:
    """Which worker of its group this process is (0 of 1 when it serves alone)."""

    index: int = 0
    count: int = 1

    @property
    def leads(self) -> bool:
        """Whether this process runs the group's once-only work."""
        return self.index == 0


_role = WorkerRole()


def worker_role() -> WorkerRole:
    """This process's place in its worker group (0 of 1 outside a group, e.g. in tests)."""
    return _role


def serve(
    service: str,
    app_factory: Callable[[], FastAPI],
    settings: CommonSettings,
    *,
    port: int,
    workers: int = 1,
) -> None:
    """Serve until SIGTERM or Ctrl-C; shutdown lets in-flight work finish first.

    `workers > 1`: that many processes on one port (see the module docstring); the
    factory must then be importable by name (a module-level function), as a fresh
    interpreter builds the app.
    """
    configure_logging(
        service, level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file
    )
    if workers <= 1:
        _serve_here(app_factory, settings, port=port, sockets=None)
        return
    sys.exit(_WorkerGroup(service, app_factory, settings, port=port, workers=workers).run())


def _serve_here(
    app_factory: Callable[[], FastAPI],
    settings: CommonSettings,
    *,
    port: int,
    sockets: list[socket.socket] | None,
) -> None:
    app = app_factory()
    _freeze_startup_heap()
    QuietServer(server_config(app, settings, port=port)).run(sockets=sockets)


def server_config(app: FastAPI, settings: CommonSettings, *, port: int) -> uvicorn.Config:
    """How uvicorn serves a service's app."""
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,  # keep our structlog setup for uvicorn's loggers too
        # The app logs one line per request itself (services/common/http.py, with the
        # route, status and duration); uvicorn's line would be a second, rendered apart.
        access_log=False,
        lifespan="on",
        # uvloop and httptools are dependencies, named here so that a missing one is an
        # error at start-up rather than a silent fall-back to the slower pure-Python pair.
        loop="uvloop",
        http=OneWriteHttpProtocol,
        **forwarded_headers(settings.trusted_proxies),
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        server_header=False,
    )


def forwarded_headers(trusted_proxies: str | None) -> dict[str, Any]:
    """uvicorn's proxy-headers options for `trusted_proxies` (the setting's text).

    uvicorn believes X-Forwarded-* from 127.0.0.1 and ::1 by default: a service served
    without a proxy paid for it on every local request (one more layer, a pass over the
    headers: ~0.75 us a request), and any local process could write another client's
    address into the request's log line. Only the proxies an operator names are believed.
    """
    listed = (trusted_proxies or "").split(",")
    proxies = [address.strip() for address in listed if address.strip()]
    if not proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": proxies}


class _OneWriteTransport(asyncio.Transport):
    """A connection's transport that sends a response's head together with its body.

    uvicorn writes the status line and headers when the app starts a response and the
    body when it follows: two sends, so two TCP segments and two reads by the client,
    for every answer. Profiled at 64 clients, intake's two response sends were ~9 % of
    its CPU. A write is held until the next write of the same loop turn (an app's body
    follows its start at once) and then both go out in one send; a write nothing follows
    goes out on the loop's next turn, and `close` sends what is held first, so the bytes
    leave in the order written.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
            return
        self._held = None
        self._transport.write(held + data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._flush()
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    # The rest of a transport's surface, for whatever else a connection is handed to
    # (uvicorn itself calls only the methods above; `writelines` is asyncio's, a joined
    # `write`): held bytes always go first.
    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a transport that sends head and body at once."""

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(_OneWriteTransport(transport, self.loop))


# How often the server looks for a stop it was not told of and refreshes its Date header.
_TICK_S = 1.0


class QuietServer(uvicorn.Server):
    """uvicorn's server, ticking once a second instead of ten times.

    uvicorn's main loop wakes every 100 ms to see whether it should stop (and every tenth
    time refreshes the Date header): ten wake-ups a second of an idle service, ~1.7 ms of
    CPU a second measured on this loop. The Date header has one-second resolution anyway,
    and a stop signal (`handle_exit`) wakes the loop at once instead of at the next tick.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()
        self._stop_loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._stop_loop = asyncio.get_running_loop()
        # on_tick refreshes the Date header when the counter is a multiple of 10.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864_000
            await self._wait_for_stop(_TICK_S)
            should_exit = await self.on_tick(counter)

    async def _wait_for_stop(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._stop_loop is not None:
            # Called from a signal handler: the thread-safe call also wakes the loop.
            self._stop_loop.call_soon_threadsafe(self._stop.set)


def _freeze_startup_heap() -> None:
    """Keep what start-up built (modules, models, routes) out of the collector's way.

    A service builds hundreds of thousands of long-lived objects once (FastAPI, pydantic,
    SQLAlchemy, aiokafka); every full collection walked them all again: at 64 clients a
    full collection of intake took ~170 ms of CPU, during which no request moved. Frozen
    objects are never collected (they live as long as the process anyway); what requests
    allocate afterwards is collected as before. Only here, in the process that serves:
    a test process builds and drops many apps and must collect them.
    """
    gc.collect()
    gc.freeze()


def _reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port that other sockets of this user may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker_main(
    service: str,
    app_factory: Callable[[], FastAPI],
    settings: CommonSettings,
    port: int,
    role: WorkerRole,
    supervisor: int,
) -> None:
    """The body of one worker process: logging, the app, its own socket on the port."""
    global _role
    _role = role
    _stop_with(supervisor)
    configure_logging(
        service, level=settings.log_level, fmt=settings.log_format, log_file=settings.log_file
    )
    # Not listening yet: uvicorn listens once the app's lifespan has started.
    sock = _reuseport_socket(settings.http_host, port)
    _serve_here(app_factory, settings, port=port, sockets=[sock])


def _stop_with(supervisor: int) -> None:
    """Stop gracefully (SIGTERM) when the supervisor dies without stopping us (a SIGKILL).

    Otherwise the workers would go on serving the port, orphaned, where nothing manages
    them. Linux only; elsewhere an orphaned worker is stopped by hand.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:
        sys.exit(1)  # it died before the request above took effect


class _WorkerGroup:
    """The supervisor: starts the workers, forwards stop signals in order, reaps them."""

    def __init__(
        self,
        service: str,
        app_factory: Callable[[], FastAPI],
        settings: CommonSettings,
        *,
        port: int,
        workers: int,
    ) -> None:
        self.service = service
        self.app_factory = app_factory
        self.settings = settings
        self.workers = workers
        # Held (bound, never listening) for the group's life: the port stays ours between
        # worker starts, and port 0 becomes the one port every worker binds.
        self._holder = _reuseport_socket(settings.http_host, port)
        self.port: int = self._holder.getsockname()[1]
        self.run_dir = settings.var_dir / "run" / f"{service}-{self.port}"
        self._stopping = False
        self._processes: list[BaseProcess] = []

    def run(self) -> int:
        """Serve until stopped; the exit status (non-zero when a worker died on its own)."""
        metrics_dir = self._fresh_run_dir()
        # Read by prometheus-client when a worker imports it (spawn: a fresh interpreter).
        os.environ[MULTIPROCESS_DIR_ENV] = str(metrics_dir)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        context = multiprocessing.get_context("spawn")
        try:
            for index in range(self.workers):
                process = context.Process(
                    target=_worker_main,
                    args=(
                        self.service,
                        self.app_factory,
                        self.settings,
                        self.port,
                        WorkerRole(index, self.workers),
                        os.getpid(),
                    ),
                    name=f"{self.service}-worker-{index}",
                )
                process.start()
                self._processes.append(process)
            log.info(
                "serve.workers_started",
                service=self.service,
                port=self.port,
                workers=self.workers,
                pids=[p.pid for p in self._processes],
            )
            failed = self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._holder.close()
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return 1 if failed else 0

    def _fresh_run_dir(self) -> Path:
        # Files a crashed earlier run left would add its counts to this run's.
        shutil.rmtree(self.run_dir, ignore_errors=True)
        metrics_dir = self.run_dir / "metrics"
        metrics_dir.mkdir(parents=True)
        return metrics_dir

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _watch(self) -> bool:
        """Wait for a stop signal (False) or a worker that exits on its own (True)."""
        while not self._stopping:
            ended = wait([p.sentinel for p in self._processes], timeout=0.2)
            if ended and not self._stopping:
                dead = [p for p in self._processes if not p.is_alive()]
                log.error(
                    "serve.worker_exited",
                    service=self.service,
                    workers=[p.name for p in dead],
                    exit_codes=[p.exitcode for p in dead],
                )
                return True
        return False

    def _stop_all(self) -> None:
        """Followers first, then the leader, each given the graceful stop's time."""
        grace = self.settings.shutdown_grace_s + _STOP_MARGIN_S
        followers, leader = self._processes[1:], self._processes[:1]
        for group in (followers, leader):
            for process in group:
                if process.is_alive() and process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGTERM)
            for process in group:
                process.join(timeout=grace)
                if process.is_alive():
                    log.error("serve.worker_killed", service=self.service, worker=process.name)
                    process.kill()
                    process.join(timeout=5)
        log.info("serve.workers_stopped", service=self.service, port=self.port)
