"""Where the local broker's jars come from: ``KAFKA_HOME``, or Maven Central once into a cache.

Part of deploy/local/kafka.py (the lifecycle); see its docstring for the order of sources.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from deploy.local.common import InfraError, say

__all__ = [
    "DEFAULT_VERSION",
    "MIN_JAVA",
    "cache_base",
    "classpath",
    "kafka_version",
    "require_java",
    "resolve_jars",
]

DEFAULT_VERSION = "4.3.1"
MIN_JAVA = 17
POM_TEMPLATE = Path(__file__).resolve().with_name("kafka") / "pom.xml"
_COMPLETE_MARKER = ".complete"


def _say(message: str) -> None:
    say("kafka", message)


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
        require_java()
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


def require_java() -> str:
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
