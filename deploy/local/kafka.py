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
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

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
    wait_for_port,
    write_pid,
    write_state,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_VERSION",
    "KafkaLayout",
    "KafkaSettings",
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
DEFAULT_VERSION = "4.3.1"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
MIN_JAVA = 17
_TEMPLATES = Path(__file__).resolve().with_name("kafka")
POM_TEMPLATE = _TEMPLATES / "pom.xml"
LOG4J_CONFIG = _TEMPLATES / "log4j2.yaml"
_COMPLETE_MARKER = ".complete"

# Brokers this process launched, by pid. Holding the Popen objects lets stop()
# reap its own children and avoids "subprocess is still running" warnings when
# a Popen would otherwise be garbage-collected while the broker runs on.
_launched: dict[int, subprocess.Popen[bytes]] = {}


def _say(message: str) -> None:
    say(COMPONENT, message)


# --------------------------------------------------------------------------- jars


def kafka_version() -> str:
    """Return the Kafka version to run (``AVISO_KAFKA_VERSION`` or the default)."""
    return os.environ.get("AVISO_KAFKA_VERSION", "").strip() or DEFAULT_VERSION


def cache_base() -> Path:
    """Return the per-user cache directory for resolved jars."""
    override = os.environ.get("AVISO_CACHE_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "aviso"


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (two test runs must not resolve at once)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _jar_count(libs: Path) -> int:
    return sum(1 for _ in libs.glob("*.jar"))


def resolve_jars(version: str | None = None, *, cache_dir: Path | None = None) -> Path:
    """Return a directory holding the broker's jars, resolving them with Maven once."""
    version = version or kafka_version()
    home = (cache_dir or cache_base()) / f"kafka-{version}"
    libs = home / "libs"
    marker = home / _COMPLETE_MARKER
    if marker.exists() and _jar_count(libs) > 0:
        return libs
    with _locked(home.parent / f"kafka-{version}.lock"):
        # Another process may have finished while we waited for the lock.
        if marker.exists() and _jar_count(libs) > 0:
            return libs
        _require_java()
        mvn = shutil.which("mvn")
        if mvn is None:
            raise InfraError(
                "Maven (mvn) is needed once to fetch Kafka's jars; install it "
                "(apt-get install -y maven), or set KAFKA_HOME to an Apache Kafka "
                "distribution, or KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
            )
        # Copy into a staging dir and rename, so an interrupted download never
        # leaves a half-filled libs/ that looks usable.
        staging = home / f"staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "libs").mkdir(parents=True)
        pom = staging / "pom.xml"
        shutil.copyfile(POM_TEMPLATE, pom)
        _say(f"resolving Apache Kafka {version} jars from Maven Central into {libs} …")
        started = time.monotonic()
        command = [
            mvn,
            "-q",
            "-B",
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging / 'libs'}",
            "-DincludeScope=runtime",
            "-f",
            str(pom),
        ]
        output = _run_with_heartbeat(command, cwd=staging, what="resolving jars")
        if output.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise InfraError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{version} "
                f"(exit {output.returncode}):\n{output.stdout[-4000:]}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        (staging / "libs").rename(libs)
        shutil.rmtree(staging, ignore_errors=True)
        count = _jar_count(libs)
        marker.write_text(f"{version} {count} jars\n", encoding="utf-8")
        _say(f"done in {time.monotonic() - started:.1f} s, {count} jars")
        return libs


def _run_with_heartbeat(
    command: Sequence[str], *, cwd: Path, what: str, heartbeat: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run a quiet command, printing a line every ``heartbeat`` s so it never looks hung."""
    started = time.monotonic()
    with subprocess.Popen(
        list(command),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        while True:
            try:
                out, _ = proc.communicate(timeout=heartbeat)
                break
            except subprocess.TimeoutExpired:
                _say(f"still {what} … {time.monotonic() - started:.0f} s")
        return subprocess.CompletedProcess(list(command), proc.returncode, out or "", None)


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise InfraError(
            f"java not found; Kafka needs a Java {MIN_JAVA}+ runtime "
            "(apt-get install -y default-jre-headless)"
        )
    probe = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    found = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr + probe.stdout)
    if found:
        major = int(found.group(1))
        if major == 1 and found.group(2):  # "1.8.0" style numbering
            major = int(found.group(2))
        if major < MIN_JAVA:
            raise InfraError(f"Kafka needs Java {MIN_JAVA}+, found Java {major} at {java}")
    return java


def classpath() -> str:
    """Return the JVM classpath for the broker (``KAFKA_HOME`` or the Maven cache)."""
    kafka_home = os.environ.get("KAFKA_HOME", "").strip()
    if kafka_home:
        libs = Path(kafka_home).expanduser() / "libs"
        if _jar_count(libs) == 0:
            raise InfraError(f"KAFKA_HOME={kafka_home} has no jars in {libs}")
        _say(f"using the Kafka distribution in KAFKA_HOME={kafka_home}")
    else:
        libs = resolve_jars()
    return f"{libs}/*"


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class KafkaLayout:
    """Where a broker keeps its files under one data directory."""

    data_dir: Path

    @property
    def properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "data"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def request_log(self) -> Path:
        """Every completed request, when started with ``AVISO_KAFKA_REQUEST_LOG=1``."""
        return self.logs / "server.log.requests"

    @property
    def stdout_log(self) -> Path:
        return self.logs / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "state.json"

    @property
    def formatted(self) -> bool:
        return (self.log_dirs / "meta.properties").exists()


@dataclass(frozen=True)
class KafkaSettings:
    """What goes into server.properties."""

    data_dir: Path
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    host: str = LOOPBACK
    node_id: int = 1
    num_partitions: int = 3

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


# The JVM of a small broker that idles most of the time (docs/performance.md, "A quiet
# idle broker"): the serial collector has no concurrent GC threads working in the
# background, and stopping the JIT at C1 spares the long compilation tail a fresh
# broker spends its first minutes on; neither matters at a development stack's rates.
JVM_FLAGS: tuple[str, ...] = (
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
)


def request_log_flags() -> tuple[str, ...]:
    """JVM flags that turn the per-request log on when ``AVISO_KAFKA_REQUEST_LOG`` is set.

    Off by default: the broker formats every request as JSON to log it, a cost of its
    own; benchmarks/kafka_requests.py turns it on to count requests by type.
    """
    wanted = os.environ.get("AVISO_KAFKA_REQUEST_LOG", "").strip().lower()
    if wanted in ("", "0", "false", "no", "off"):
        return ()
    return ("-Daviso.kafka.requestlevel=DEBUG",)


# The broker's own idle work. The KRaft controller appends a no-op record to the
# metadata log every 500 ms by default (a write and an fsync, and every metadata
# listener woken): a health signal for multi-node quorums that one combined node does
# not need often. Each network thread and request handler wakes every 300 ms to poll:
# one network thread and two handlers serve a handful of local clients.
IDLE_PROPERTIES: tuple[str, ...] = (
    "metadata.max.idle.interval.ms=10000",
    "num.network.threads=1",
    "num.io.threads=2",
)


def render_server_properties(settings: KafkaSettings) -> str:
    """Return a KRaft server.properties for one combined broker+controller."""
    layout = KafkaLayout(settings.data_dir)
    controller = f"{settings.host}:{settings.controller_port}"
    lines = [
        "# Generated by deploy/local/kafka.py; rewritten on every start.",
        "# One JVM is both the KRaft controller and the only broker.",
        "process.roles=broker,controller",
        f"node.id={settings.node_id}",
        f"controller.quorum.bootstrap.servers={controller}",
        f"listeners=PLAINTEXT://{settings.bootstrap},CONTROLLER://{controller}",
        f"advertised.listeners=PLAINTEXT://{settings.bootstrap}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={layout.log_dirs}",
        f"num.partitions={settings.num_partitions}",
        "auto.create.topics.enable=true",
        "# A single broker cannot hold more than one replica of anything.",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "# Consumers in tests should not wait 3 s for the first rebalance.",
        "group.initial.rebalance.delay.ms=0",
        "# Aviso's consumers use a 2 s session (failover after a crash within ~3 s);",
        "# Kafka's default floor for classic-protocol groups is 6 s and would refuse it.",
        "group.min.session.timeout.ms=1000",
        "# Keep the throwaway broker small on disk.",
        "log.retention.hours=168",
        "log.segment.bytes=67108864",
        "# Little background work while idle (see IDLE_PROPERTIES).",
        *IDLE_PROPERTIES,
    ]
    return "\n".join(lines) + "\n"


def _random_cluster_id() -> str:
    """Return a Kafka cluster id: a random UUID in URL-safe base64 without padding."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        # Kafka's own generator avoids a leading '-' so the id never reads as a CLI flag.
        if not candidate.startswith("-"):
            return candidate


def _format_storage(java: str, cp: str, layout: KafkaLayout) -> None:
    cluster_id = _random_cluster_id()
    _say(f"formatting KRaft storage in {layout.log_dirs} (cluster id {cluster_id})")
    result = subprocess.run(
        [
            java,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Daviso.kafka.logfile={layout.logs / 'format.log'}",
            "-cp",
            cp,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(layout.properties),
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise InfraError(
            f"kafka.tools.StorageTool format failed (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


# ------------------------------------------------------------------ lifecycle


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

    java = _require_java()
    cp = classpath()
    if not layout.formatted:
        _format_storage(java, cp, layout)

    _say(f"starting broker on {settings.bootstrap} (logs: {layout.server_log})")
    with layout.stdout_log.open("ab") as stdout:
        # A new session: Ctrl-C in the terminal that ran `start` must not kill the broker.
        proc = subprocess.Popen(
            [
                java,
                f"-Xmx{heap}",
                *JVM_FLAGS,
                *request_log_flags(),
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                f"-Daviso.kafka.logfile={layout.server_log}",
                "-cp",
                cp,
                "kafka.Kafka",
                str(layout.properties),
            ],
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


async def wait_until_ready(
    bootstrap: str, *, pid: int | None = None, within: float = DEFAULT_READY_TIMEOUT
) -> float:
    """Wait until the broker answers a metadata request with a live broker; return seconds waited.

    ``pid`` (when given) is watched so a broker that dies fails fast instead of
    at the deadline.
    """
    started = time.monotonic()
    deadline = started + within
    host, _, port_text = bootstrap.rpartition(":")

    def alive() -> bool:
        return pid is None or pid_alive(pid)

    # Cheap TCP probe first: aiokafka logs an error for every refused bootstrap.
    opened = await asyncio.to_thread(
        wait_for_port, int(port_text), host=host, timeout=within, alive=alive
    )
    if not opened:
        if not alive():
            raise InfraError(f"broker process {pid} exited before opening {bootstrap}")
        raise InfraError(f"broker did not open {bootstrap} within {within:.0f} s")

    last_error = "no answer yet"
    next_report = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if not alive():
            raise InfraError(f"broker process {pid} exited while starting")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            # Brokers appear in metadata only once registered and unfenced.
            if cluster.get("brokers") and cluster.get("controller_id", -1) != -1:
                return time.monotonic() - started
            last_error = f"metadata without a live broker: {cluster}"
        except Exception as error:  # any client error means "not yet"; retried until the deadline
            last_error = f"{type(error).__name__}: {error}"
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        if time.monotonic() >= next_report:
            _say(f"waiting for metadata from {bootstrap} … {time.monotonic() - started:.0f} s")
            next_report = time.monotonic() + 5.0
        await asyncio.sleep(0.25)
    raise InfraError(
        f"broker on {bootstrap} did not answer metadata within {within:.0f} s ({last_error})"
    )


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


# ------------------------------------------------------------------ topics


async def ensure_topics(
    bootstrap: str,
    topics: Sequence[str],
    partitions: int = 3,
    *,
    replication_factor: int = 1,
    within: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names actually created.

    Waits until every topic has a leader for each partition, so callers can
    produce and consume right away.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(topics) if name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication_factor) for name in missing],
                timeout_ms=int(within * 1000),
            )
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:  # created concurrently: fine
                    message = topic_error[2] if len(topic_error) > 2 else ""
                    raise InfraError(f"could not create topic {name}: {for_code(code)} {message}")
        await _wait_for_leaders(admin, list(dict.fromkeys(topics)), within=within)
        return created
    finally:
        await admin.close()


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], *, within: float
) -> None:
    deadline = time.monotonic() + within
    pending = list(topics)
    while pending:
        described = await admin.describe_topics(pending)
        pending = [
            item["topic"]
            for item in described
            if item["error_code"] != 0
            or not item["partitions"]
            or any(part["leader"] < 0 for part in item["partitions"])
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise InfraError(f"topics without a leader after {within:.0f} s: {pending}")
        await asyncio.sleep(0.2)


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
