"""Shared helpers for the local infrastructure scripts (Kafka, PostgreSQL).

These modules are developer tooling: they print progress on purpose, always
through :func:`say` so the result lines on stdout stay machine-readable
(``KAFKA_BOOTSTRAP_SERVERS=...`` is the last stdout line of ``start``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "InfraError",
    "cmdline_of",
    "default_var_dir",
    "free_port",
    "pid_alive",
    "port_in_use",
    "read_pid",
    "read_state",
    "remove_quietly",
    "repo_root",
    "run_sync",
    "say",
    "tail",
    "terminate",
    "wait_for_port",
    "write_pid",
    "write_state",
]

LOOPBACK = "127.0.0.1"


class InfraError(RuntimeError):
    """A local service could not be prepared, started or stopped."""


def say(component: str, message: str) -> None:
    """Print one progress line, prefixed with the component, to stderr."""
    # stderr, so `VAR=$(python -m deploy.local.kafka start)` captures only the result.
    print(f"[{component}] {message}", file=sys.stderr, flush=True)


def repo_root() -> Path:
    """Return the checkout this file lives in (deploy/local/common.py -> repo)."""
    return Path(__file__).resolve().parents[2]


def default_var_dir() -> Path:
    """Return the repository's ``var/`` directory (git-ignored runtime state)."""
    return repo_root() / "var"


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Return True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# Where the kernel picks the source ports of outgoing connections (Linux's default when
# /proc cannot be read). A port picked there for a server that binds it seconds later can
# meanwhile become the source port of some connection to 127.0.0.1 (the services hold
# dozens to Kafka and PostgreSQL), and the server then fails with "address already in
# use". Ports below the range are never handed out that way.
_EPHEMERAL_FALLBACK = (32768, 60999)
_LOWEST_PICK = 10_000


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (ip_local_port_range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _EPHEMERAL_FALLBACK


def free_port(host: str = LOOPBACK, exclude: frozenset[int] = frozenset()) -> int:
    """Return a TCP port that is free on host right now, below the ephemeral range.

    Chosen at random below the range the kernel takes outgoing connections' source ports
    from (so no connection can take it before the caller binds it), and checked by
    binding it; the kernel's own pick only if the range leaves no room below it.
    """
    low, _high = ephemeral_range()
    for _ in range(50):
        if low - _LOWEST_PICK >= 1_000:
            port = random.randrange(_LOWEST_PICK, low)
            if port in exclude or not _bindable(host, port):
                continue
            return port
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise InfraError("could not find a free TCP port")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(
    port: int,
    *,
    host: str = LOOPBACK,
    timeout: float = 60.0,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Wait until host:port accepts connections; False on timeout or if ``alive()`` turns False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(port, host):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.1)
    return False


def write_pid(path: Path, pid: int) -> None:
    """Write a pid file atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(path)


def read_pid(path: Path) -> int | None:
    """Return the pid stored in path, or None when missing or garbled."""
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        return None


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Persist a small JSON state file (ports, pid) next to a service's data."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_state(path: Path) -> dict[str, Any]:
    """Return the JSON state stored in path, or an empty dict."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def remove_quietly(path: Path) -> None:
    """Delete a file if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def cmdline_of(pid: int) -> str:
    """Return the command line of a running process ('' if unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _reap(pid: int) -> bool:
    """Reap pid if it is our exited child; return True if it is gone."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return reaped == pid


def pid_alive(pid: int) -> bool:
    """Return True if pid is a live (non-zombie) process."""
    if _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie whose parent is not us still answers kill(0); it is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0:1]
    return state != ["Z"]


def terminate(pid: int, *, timeout: float = 30.0, component: str = "stop") -> bool:
    """SIGTERM pid, wait up to timeout, then SIGKILL. Return True if it had to be killed."""
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.1)
    say(component, f"pid {pid} did not exit within {timeout:.0f} s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 10.0
    while pid_alive(pid) and time.monotonic() < kill_deadline:
        time.sleep(0.1)
    return True


def tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a text file ('' if missing)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code.

    Callers may already be inside an event loop (an async CLI or an async test
    fixture); asyncio.run() refuses that, so the coroutine then runs on a
    private loop in a worker thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
