"""A real Apache Kafka broker (KRaft, broker+controller in one JVM) for local use.

    python -m deploy.local.kafka start [--port N] [--data-dir DIR]
    python -m deploy.local.kafka stop|status [--data-dir DIR]
    python -m deploy.local.kafka fetch          (resolve the jars only)

Where the jars come from, in order:
  * ``KAFKA_BOOTSTRAP_SERVERS`` set: an external cluster; nothing is started.
  * ``KAFKA_HOME`` set: an installed Apache distribution; ``$KAFKA_HOME/libs/*``.
  * otherwise the broker's jars are resolved from Maven Central with Maven once
    into ``$AVISO_CACHE_DIR/kafka-<version>/libs`` (default ``~/.cache/aviso``)
    and reused afterwards. ``AVISO_KAFKA_VERSION`` picks the version.

Everything the broker writes (config, KRaft metadata, topic data, logs, pid
file) lives in the data directory, by default ``var/kafka``.

This module is the lifecycle (start, stop, status, the CLI); beside it: kafka_jars.py
(the classpath), kafka_config.py (server.properties), kafka_jvm.py (the JVM's flags and
command line) and kafka_ready.py (readiness, topics). Their public names are importable
from here too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from deploy.local.common import (
    LOOPBACK,
    InfraError,
    cmdline_of,
    default_var_dir,
    free_port,
    pid_alive,
    port_in_use,
    read_pid,
    read_state,
    remove_quietly,
    run_sync,
    say,
    tail,
    terminate,
    write_pid,
    write_state,
)
from deploy.local.kafka_config import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_PORT,
    KafkaLayout,
    KafkaSettings,
    render_server_properties,
)
from deploy.local.kafka_jars import (
    DEFAULT_VERSION,
    cache_base,
    classpath,
    kafka_version,
    require_java,
    resolve_jars,
)
from deploy.local.kafka_jvm import broker_command, format_storage, request_log_flags
from deploy.local.kafka_ready import DEFAULT_READY_TIMEOUT, ensure_topics, wait_until_ready

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_READY_TIMEOUT",
    "DEFAULT_VERSION",
    "KafkaLayout",
    "KafkaSettings",
    "cache_base",
    "classpath",
    "ensure_topics",
    "kafka_version",
    "main",
    "render_server_properties",
    "request_log_flags",
    "resolve_jars",
    "start",
    "status",
    "stop",
    "wait_until_ready",
]

COMPONENT = "kafka"
STOP_TIMEOUT = 30.0

# Brokers this process launched, by pid. Holding the Popen objects lets stop()
# reap its own children and avoids "subprocess is still running" warnings when
# a Popen would otherwise be garbage-collected while the broker runs on.
_launched: dict[int, subprocess.Popen[bytes]] = {}


def _say(message: str) -> None:
    say(COMPONENT, message)


def _is_our_broker(pid: int, layout: KafkaLayout) -> bool:
    """True if pid is a broker started with this data dir's properties (guards pid reuse)."""
    cmdline = cmdline_of(pid)
    return "kafka.Kafka" in cmdline and str(layout.properties) in cmdline


def _running_pid(layout: KafkaLayout) -> int | None:
    pid = read_pid(layout.pid_file)
    if pid is not None and pid_alive(pid) and _is_our_broker(pid, layout):
        return pid
    return None


def _choose_ports(port: int | None, layout: KafkaLayout) -> tuple[int, int]:
    state = read_state(layout.state_file)
    if port == 0:
        chosen = free_port()
    elif port is not None:
        if port_in_use(port):
            raise InfraError(f"port {port} on {LOOPBACK} is already in use")
        chosen = port
    else:
        preferred = int(state.get("port", DEFAULT_PORT))
        chosen = preferred
        if port_in_use(preferred):
            chosen = free_port()
            _say(f"port {preferred} is busy; using free port {chosen} instead")
    # Prefer the controller port of the previous run: it keeps the KRaft voter
    # endpoint recorded at format time accurate in logs (a new one works too).
    # 9093 only pairs with the default 9092; tests on free ports must not race for it.
    candidates = [int(state.get("controller_port", 0))]
    if chosen == DEFAULT_PORT:
        candidates.append(DEFAULT_CONTROLLER_PORT)
    for candidate in candidates:
        if candidate and candidate != chosen and not port_in_use(candidate):
            return chosen, candidate
    return chosen, free_port(exclude=frozenset({chosen}))


def start(
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
    heap: str = "512m",
) -> str:
    """Start (or find) a broker and return its bootstrap address once it answers metadata.

    ``port=None`` means 9092 (or the port of the previous run), falling back to
    a free port when busy; ``port=0`` always picks a free port.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        _say(
            f"KAFKA_BOOTSTRAP_SERVERS={external} is set: using that cluster, starting "
            "nothing (unset it to run a local broker)"
        )
        return external

    layout = KafkaLayout((data_dir or default_var_dir() / "kafka").resolve())
    running = _running_pid(layout)
    if running is not None:
        bootstrap = str(read_state(layout.state_file).get("bootstrap", ""))
        _say(f"already running (pid {running}) on {bootstrap}")
        return bootstrap

    began = time.monotonic()
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    remove_quietly(layout.pid_file)
    chosen, controller_port = _choose_ports(port, layout)
    settings = KafkaSettings(data_dir=layout.data_dir, port=chosen, controller_port=controller_port)
    layout.properties.write_text(render_server_properties(settings), encoding="utf-8")

    java = require_java()
    cp = classpath()
    if not layout.formatted:
        format_storage(java, cp, layout)

    _say(f"starting broker on {settings.bootstrap} (logs: {layout.server_log})")
    with layout.stdout_log.open("ab") as stdout:
        # A new session: Ctrl-C in the terminal that ran `start` must not kill the broker.
        proc = subprocess.Popen(
            broker_command(java, cp, layout, heap=heap),
            cwd=layout.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _launched[proc.pid] = proc
    write_pid(layout.pid_file, proc.pid)
    write_state(
        layout.state_file,
        {
            "bootstrap": settings.bootstrap,
            "controller_port": controller_port,
            "pid": proc.pid,
            "port": chosen,
        },
    )
    try:
        ready_in = run_sync(
            lambda: wait_until_ready(settings.bootstrap, pid=proc.pid, within=timeout)
        )
    except InfraError as error:
        terminate(proc.pid, timeout=10.0, component=COMPONENT)
        _forget(proc.pid)
        remove_quietly(layout.pid_file)
        raise InfraError(
            f"{error}\n--- tail of {layout.server_log} ---\n{tail(layout.server_log)}"
            f"\n--- tail of {layout.stdout_log} ---\n{tail(layout.stdout_log, 15)}"
        ) from None
    _say(
        f"ready on {settings.bootstrap} (pid {proc.pid}): answered metadata "
        f"{ready_in:.1f} s after launch, {time.monotonic() - began:.1f} s in all"
    )
    return settings.bootstrap


def stop(*, data_dir: Path | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the broker started in data_dir (SIGTERM, then SIGKILL). Return True if one ran."""
    layout = KafkaLayout((data_dir or default_var_dir() / "kafka").resolve())
    pid = read_pid(layout.pid_file)
    if pid is None:
        _say(f"not running (no pid file in {layout.data_dir})")
        return False
    if not pid_alive(pid) or not _is_our_broker(pid, layout):
        _say(f"not running (stale pid file for pid {pid}); removing it")
        remove_quietly(layout.pid_file)
        return False
    _say(f"stopping broker pid {pid} …")
    began = time.monotonic()
    killed = terminate(pid, timeout=timeout, component=COMPONENT)
    _forget(pid)
    remove_quietly(layout.pid_file)
    how = "killed" if killed else "stopped cleanly"
    _say(f"{how} in {time.monotonic() - began:.1f} s")
    return True


def _forget(pid: int) -> None:
    """Drop (and reap, if still needed) a broker this process launched."""
    proc = _launched.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)


def status(*, data_dir: Path | None = None) -> str | None:
    """Return the bootstrap address of the running local broker, or None."""
    layout = KafkaLayout((data_dir or default_var_dir() / "kafka").resolve())
    if _running_pid(layout) is None:
        return None
    return str(read_state(layout.state_file).get("bootstrap", "")) or None


# ------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m deploy.local.kafka``."""
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.kafka",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status", "fetch"])
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"PLAINTEXT port (default {DEFAULT_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where config, data, logs and the pid file live (default var/kafka)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_READY_TIMEOUT,
        help="seconds to wait for the broker to answer metadata",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            bootstrap = start(port=args.port, data_dir=args.data_dir, timeout=args.timeout)
            print(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
            return 0
        if args.command == "stop":
            stop(data_dir=args.data_dir)
            return 0
        if args.command == "fetch":
            # Warm the jar cache only (CI, image builds): nothing is started.
            _say(f"classpath: {classpath()}")
            return 0
        found = status(data_dir=args.data_dir)
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if found:
            _say(f"running on {found}")
            print(f"KAFKA_BOOTSTRAP_SERVERS={found}")
            return 0
        if external:
            _say(f"no local broker; KAFKA_BOOTSTRAP_SERVERS={external} points at an external one")
            return 3
        _say("not running")
        return 3
    except InfraError as error:
        _say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
