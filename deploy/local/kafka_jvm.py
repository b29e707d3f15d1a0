"""The broker's JVM: its flags, the command that launches it, and the one-off storage format."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

from deploy.local.common import InfraError, say
from deploy.local.kafka_config import KafkaLayout

__all__ = [
    "COMPILE_SOONER",
    "JVM_FLAGS",
    "LOG4J_CONFIG",
    "broker_command",
    "extra_jvm_flags",
    "format_storage",
    "request_log_flags",
]

LOG4J_CONFIG = Path(__file__).resolve().with_name("kafka") / "log4j2.yaml"


def _say(message: str) -> None:
    say("kafka", message)


# The JVM of a small, short-lived broker: what `make run`, `make bench` and the tests
# start (docs/performance.md, "The local broker's JIT (twelfth round)"). The JIT stops at
# C1: the full tiered JIT's C2 code costs a fifth to a third less CPU per request once
# compiled, but compiling costs 8-10 s of CPU over the broker's first minutes and is
# repaid only after ~5 minutes of mixed load (a quarter of an hour at 10 notices/s);
# these brokers rarely live that long. A department's own, long-lived cluster keeps the
# JVM's defaults (docs/operations.md); `AVISO_KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=4`
# runs the full JIT here. The serial collector: no concurrent GC threads working in the
# background, and the collector is 2-3 % of the broker's CPU whichever runs.
# C1 compiles a method once it has run a quarter as often as the JVM's default asks
# (COMPILE_SOONER): a broker that serves a few requests a second otherwise runs its request
# paths interpreted for most of its first minutes (a path handled 10 times a second takes
# 20 s to reach 200 calls), which is where a bench or a test spends its life. Measured
# (docs/performance.md, "(thirteenth round)"): ~1.5 ms less broker CPU per notice at 10/s
# and ~4 ms/s less idle in the bench, ~0.15 s more compiling while it starts, the same in
# all over a 2-minute life.
COMPILE_SOONER: tuple[str, ...] = (
    "-XX:Tier3InvocationThreshold=50",
    "-XX:Tier3MinInvocationThreshold=25",
    "-XX:Tier3CompileThreshold=500",
    "-XX:Tier3BackEdgeThreshold=15000",
    # The interpreter looks at a method's counters every 2^n calls (2^7 = 128 by
    # default), which would round a threshold of 50 up to 128.
    "-XX:Tier0InvokeNotifyFreqLog=5",
    "-XX:Tier0BackedgeNotifyFreqLog=8",
)
JVM_FLAGS: tuple[str, ...] = (
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    *COMPILE_SOONER,
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


def _random_cluster_id() -> str:
    """Return a Kafka cluster id: a random UUID in URL-safe base64 without padding."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        # Kafka's own generator avoids a leading '-' so the id never reads as a CLI flag.
        if not candidate.startswith("-"):
            return candidate


def extra_jvm_flags() -> tuple[str, ...]:
    """JVM flags from ``AVISO_KAFKA_JVM_OPTS`` (split on spaces), placed after ours.

    HotSpot takes the last of two conflicting flags, so a trial of another collector or
    JIT needs no code change (``-XX:-UseSerialGC -XX:+UseParallelGC``, for instance).
    """
    return tuple(os.environ.get("AVISO_KAFKA_JVM_OPTS", "").split())


def format_storage(java: str, cp: str, layout: KafkaLayout) -> None:
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


def broker_command(java: str, cp: str, layout: KafkaLayout, *, heap: str) -> list[str]:
    """Return the command line that runs the broker on ``layout``'s properties."""
    return [
        java,
        f"-Xmx{heap}",
        *JVM_FLAGS,
        *extra_jvm_flags(),
        *request_log_flags(),
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        f"-Daviso.kafka.logfile={layout.server_log}",
        "-cp",
        cp,
        "kafka.Kafka",
        str(layout.properties),
    ]
