"""The local infrastructure against the real broker and database.

``kafka_bootstrap`` and ``postgres_url`` are session fixtures from
tests/conftest.py wrapping tests/support/infra.py.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from benchmarks import kafka_requests
from deploy.local import kafka as local_kafka
from deploy.local import kafka_jvm
from deploy.local import postgres as local_postgres
from deploy.local.stack import write_env_file
from tests.support.infra import asyncpg_dsn, drop_database, fresh_database


def _unique_topic(label: str) -> str:
    return f"aviso.test.{label}.{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- pure


def test_server_properties_configure_a_single_node_kraft_cluster(tmp_path: Path) -> None:
    settings = local_kafka.KafkaSettings(data_dir=tmp_path, port=29092, controller_port=29093)

    lines = local_kafka.render_server_properties(settings).splitlines()

    for expected in (
        "process.roles=broker,controller",
        "node.id=1",
        "controller.quorum.bootstrap.servers=127.0.0.1:29093",
        "listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093",
        "advertised.listeners=PLAINTEXT://127.0.0.1:29092",
        "controller.listener.names=CONTROLLER",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "group.initial.rebalance.delay.ms=0",
        "num.partitions=3",
        "auto.create.topics.enable=true",
        f"log.dirs={tmp_path / 'data'}",
        # Idle cost: no no-op metadata record every 500 ms, few polling threads.
        "metadata.max.idle.interval.ms=10000",
        "num.network.threads=1",
        "num.io.threads=2",
    ):
        assert expected in lines, expected


def test_the_brokers_request_log_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Logging every request costs the broker CPU: never on in a stack by default.
    monkeypatch.delenv("AVISO_KAFKA_REQUEST_LOG", raising=False)
    assert local_kafka.request_log_flags() == ()
    monkeypatch.setenv("AVISO_KAFKA_REQUEST_LOG", "0")
    assert local_kafka.request_log_flags() == ()
    monkeypatch.setenv("AVISO_KAFKA_REQUEST_LOG", "1")
    assert local_kafka.request_log_flags() == ("-Daviso.kafka.requestlevel=DEBUG",)


def test_the_local_broker_stops_the_jit_at_c1_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = local_kafka.KafkaLayout(tmp_path)
    monkeypatch.delenv("AVISO_KAFKA_JVM_OPTS", raising=False)
    short_lived = kafka_jvm.broker_command("java", "cp/*", layout, heap="1g")
    monkeypatch.setenv("AVISO_KAFKA_JVM_OPTS", "-XX:TieredStopAtLevel=4")
    full_jit = kafka_jvm.broker_command("java", "cp/*", layout, heap="1g")

    # A fresh broker's C2 compiling is repaid only after minutes of load (docs/performance.md,
    # twelfth round): the local broker stops at C1, and the full JIT is one variable away
    # (HotSpot takes the last of two conflicting flags).
    assert [f for f in short_lived if f.startswith("-XX:TieredStopAtLevel")] == [
        "-XX:TieredStopAtLevel=1"
    ]
    tiers = [f for f in full_jit if f.startswith("-XX:TieredStopAtLevel")]
    assert tiers == ["-XX:TieredStopAtLevel=1", "-XX:TieredStopAtLevel=4"]
    assert "-XX:+UseSerialGC" in short_lived


def test_the_local_broker_compiles_its_request_paths_sooner() -> None:
    # At a few requests a second the JVM's default thresholds leave a short-lived broker's
    # request paths interpreted for most of its life (docs/performance.md, thirteenth round).
    command = kafka_jvm.broker_command(
        "java", "cp/*", local_kafka.KafkaLayout(Path("x")), heap="1g"
    )
    assert set(kafka_jvm.COMPILE_SOONER) <= set(command)
    assert "-XX:Tier3InvocationThreshold=50" in kafka_jvm.COMPILE_SOONER
    java = shutil.which("java")
    assert java is not None, "java runs the local broker: .ci/run installs it"
    # HotSpot refuses to start on a flag it does not know: every one of them is real.
    done = subprocess.run(
        [java, *kafka_jvm.JVM_FLAGS, "-version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_a_broker_setting_can_be_tried_without_a_code_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = local_kafka.KafkaSettings(data_dir=tmp_path)
    monkeypatch.delenv("AVISO_KAFKA_PROPERTIES", raising=False)
    assert "num.io.threads=1" not in local_kafka.render_server_properties(settings).splitlines()

    monkeypatch.setenv("AVISO_KAFKA_PROPERTIES", "num.io.threads=1; group.coordinator.threads=1;")
    lines = local_kafka.render_server_properties(settings).splitlines()

    # Java's Properties keeps the last of two equal keys: the trial's lines come last.
    assert lines[-2:] == ["num.io.threads=1", "group.coordinator.threads=1"]
    assert lines.index("num.io.threads=2") < lines.index("num.io.threads=1")


def test_a_jvm_flag_can_be_tried_without_a_code_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = local_kafka.KafkaLayout(tmp_path)
    monkeypatch.delenv("AVISO_KAFKA_REQUEST_LOG", raising=False)
    monkeypatch.delenv("AVISO_KAFKA_JVM_OPTS", raising=False)
    plain = kafka_jvm.broker_command("java", "cp/*", layout, heap="512m")

    monkeypatch.setenv("AVISO_KAFKA_JVM_OPTS", "-XX:-UseSerialGC  -XX:+UseParallelGC")
    tried = kafka_jvm.broker_command("java", "cp/*", layout, heap="512m")

    # HotSpot takes the last of two conflicting flags: the trial's come after ours.
    assert "-XX:+UseParallelGC" not in plain
    assert [
        flag for flag in tried if flag not in ("-XX:-UseSerialGC", "-XX:+UseParallelGC")
    ] == plain
    flags = tried[1 : tried.index("-cp")]
    assert flags.index("-XX:+UseParallelGC") > flags.index("-XX:+UseSerialGC")
    assert flags.index("-XX:-UseSerialGC") > flags.index("-XX:+UseSerialGC")
    assert tried[-2:] == ["kafka.Kafka", str(layout.properties)]


def test_postgres_fast_mode_only_drops_durability_when_asked(tmp_path: Path) -> None:
    durable = local_postgres.server_options(5555, tmp_path, fast=False)
    fast = local_postgres.server_options(5555, tmp_path, fast=True)

    assert "-h 127.0.0.1" in durable
    assert "-p 5555" in durable
    assert "max_connections=200" in durable
    assert "fsync=off" not in durable
    for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
        assert setting in fast


def test_a_durable_cluster_compresses_full_page_images_where_the_server_can(
    tmp_path: Path,
) -> None:
    durable = local_postgres.server_options(5555, tmp_path, fast=False, wal_compression="lz4")
    fast = local_postgres.server_options(5555, tmp_path, fast=True, wal_compression="lz4")

    assert "-c wal_compression=lz4" in durable
    assert "wal_compression" not in fast  # no full-page images to compress
    assert "wal_compression" not in local_postgres.server_options(5555, tmp_path, fast=False)
    # What start() passes: Debian's PostgreSQL 15+ is built with lz4; an unknown server is not
    # assumed to be.
    assert local_postgres.wal_compression_method(local_postgres.find_bin_dir()) == "lz4"
    assert local_postgres.wal_compression_method(tmp_path / "15" / "bin") is None


def test_both_kinds_of_cluster_compress_wide_values_with_lz4_where_the_server_can(
    tmp_path: Path,
) -> None:
    for fast in (False, True):
        options = local_postgres.server_options(5555, tmp_path, fast=fast, toast_compression="lz4")
        assert "-c default_toast_compression=lz4" in options
        # Unknown servers keep PostgreSQL's default (pglz).
        assert "default_toast_compression" not in local_postgres.server_options(
            5555, tmp_path, fast=fast
        )


def test_external_addresses_start_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@db.example/aviso")

    assert local_kafka.start(data_dir=tmp_path / "k") == "kafka.example:9092"
    assert (
        local_postgres.start(data_dir=tmp_path / "p") == "postgresql+asyncpg://u@db.example/aviso"
    )
    assert not (tmp_path / "k").exists()
    assert not (tmp_path / "p").exists()


def test_env_file_is_shell_sourceable(tmp_path: Path) -> None:
    env_file = tmp_path / "stack.env"
    tricky = "postgresql+asyncpg://u:p a$s'@127.0.0.1:5432/aviso"

    write_env_file(env_file, {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "DATABASE_URL": tricky})
    echoed = subprocess.run(
        [
            "bash",
            "-c",
            '. "$1" && printf "%s\\n%s" "$KAFKA_BOOTSTRAP_SERVERS" "$DATABASE_URL"',
            "_",
            str(env_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert echoed == f"127.0.0.1:9092\n{tricky}"


# ---------------------------------------------------------------- real Kafka


@pytest.mark.kafka
async def test_message_round_trips_through_the_broker(kafka_bootstrap: str) -> None:
    topic = _unique_topic("roundtrip")
    await local_kafka.ensure_topics(kafka_bootstrap, [topic])
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, b'{"hello": "world"}', key=b"notice-1", headers=[("ce_id", b"m-1")]
        )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        received = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()

    assert (received.partition, received.offset) == (sent.partition, sent.offset)
    assert received.key == b"notice-1"
    assert received.value == b'{"hello": "world"}'
    assert list(received.headers) == [("ce_id", b"m-1")]


@pytest.mark.kafka
async def test_ensure_topics_is_idempotent(kafka_bootstrap: str) -> None:
    topics = [_unique_topic("alpha"), _unique_topic("beta")]

    first = await local_kafka.ensure_topics(kafka_bootstrap, topics, partitions=3)
    second = await local_kafka.ensure_topics(kafka_bootstrap, topics, partitions=3)

    assert sorted(first) == sorted(topics)
    assert second == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    assert {item["topic"]: len(item["partitions"]) for item in described} == dict.fromkeys(
        topics, 3
    )


@pytest.mark.kafka
def test_local_broker_starts_answers_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The session broker may be external; this one exercises deploy.local itself.
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    # With its request log on: what `make bench --kafka-requests` counts.
    monkeypatch.setenv("AVISO_KAFKA_REQUEST_LOG", "1")
    data_dir = tmp_path / "kafka"
    try:
        bootstrap = local_kafka.start(port=0, data_dir=data_dir, timeout=90)
        assert local_kafka.status(data_dir=data_dir) == bootstrap
        assert local_kafka.start(data_dir=data_dir) == bootstrap  # second start finds it
        assert (data_dir / "logs" / "server.log").stat().st_size > 0
        layout = local_kafka.KafkaLayout(data_dir)
        with layout.request_log.open(encoding="utf-8") as lines:
            answered = {request.api for request in kafka_requests.parse(lines)}
        # The readiness probe's requests, each logged with its timings.
        assert {"API_VERSIONS", "METADATA"} <= answered
    finally:
        stopped = local_kafka.stop(data_dir=data_dir, timeout=15)

    assert stopped
    assert local_kafka.status(data_dir=data_dir) is None
    assert not (data_dir / "kafka.pid").exists()


# ---------------------------------------------------------------- real PostgreSQL


@pytest.mark.postgres
async def test_postgres_answers_select_version(postgres_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(postgres_url), timeout=15)
    try:
        version = await connection.fetchval("SELECT version()")
    finally:
        await connection.close()

    assert version.startswith("PostgreSQL ")


@pytest.mark.postgres
async def test_fresh_database_is_created_empty_and_dropped(postgres_url: str) -> None:
    url = fresh_database(postgres_url)
    name = url.rsplit("/", 1)[-1]
    try:
        connection = await asyncpg.connect(asyncpg_dsn(url), timeout=15)
        try:
            assert await connection.fetchval("SELECT current_database()") == name
            tables = await connection.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )
            assert tables == 0
        finally:
            await connection.close()
    finally:
        drop_database(url)

    server = await asyncpg.connect(asyncpg_dsn(postgres_url), timeout=15)
    try:
        still_there = await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await server.close()
    assert still_there is None


@pytest.mark.postgres
def test_local_cluster_starts_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # Not tmp_path: /tmp/pytest-of-root is 0700, which the postgres user cannot enter.
    data_dir = Path(tempfile.mkdtemp(prefix="aviso-test-pg-"))
    try:
        url = local_postgres.start(port=0, data_dir=data_dir, fast=True)
        assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
        assert url.endswith("/aviso")
        assert local_postgres.status(data_dir=data_dir) == url
    finally:
        stopped = local_postgres.stop(data_dir=data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

    assert stopped
    assert local_postgres.status(data_dir=data_dir) is None
