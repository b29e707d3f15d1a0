"""Redaction through the real processor chain: structlog, stdlib and FastStream.

Every test configures logging for real (`configure_logging(..., force=True)`) with
the output pointed at a buffer or a file, logs planted canaries, and reads the
rendered lines back. `structlog.testing.capture_logs` is not used: it replaces
the processor chain, which is the thing under test.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from aiokafka.errors import GroupAuthorizationFailedError, GroupCoordinatorNotAvailableError
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

import services.common.logging as aviso_logging
import services.common.logging.held_values as held_values
import services.common.logging.redaction as log_redaction
import services.common.logging.setup as log_setup
from services.common.logging import (
    REDACTED,
    add_restricted_keys,
    bind_context,
    bound,
    clear_context,
    configure_logging,
    faststream_logger,
    forget_sensitive_value,
    forget_sensitive_values,
    get_logger,
    holding_sensitive_values,
    is_restricted_key,
    register_sensitive_value,
    register_sensitive_values,
)


def canary() -> str:
    return f"CANARY-7f3a-{uuid.uuid4().hex}"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Route the whole process's logging into a buffer, through the real chain."""
    buffer = io.StringIO()
    configure_logging("test-svc", level="DEBUG", fmt="json", stream=buffer, force=True)
    clear_context()
    try:
        yield buffer
    finally:
        clear_context()
        configure_logging("aviso-tests", force=True)
        # Leave the process as unconfigured so another test's (or fixture's)
        # first configure_logging call is not silently a no-op.
        log_setup._state.configured = False


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def assert_absent(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret} leaked into the log output"


class Notice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notice_id: str
    window_hours: int
    agent_name: str


def test_restricted_keys_redacted_at_any_depth_and_other_fields_kept(output: io.StringIO) -> None:
    secrets = [canary() for _ in range(8)]
    log = get_logger("tests.redaction")
    log.info(
        "notice.received",
        notice_id="n-1",
        agent_name=secrets[0],
        agentPhone=secrets[1],
        details={"restricted": {"names": [secrets[2]]}, "releasable": "Eastside district"},
        items=[{"plates": [secrets[3]]}, {"vehicle": {"colour": secrets[4]}}, "plain"],
        headers=[(b"authorization", f"Bearer {secrets[5]}".encode()), (b"accept", b"*/*")],
        restricted_free_text=secrets[6],
        api_token=secrets[7],
        name="intake",
    )
    text = output.getvalue()
    assert_absent(text, *secrets)
    (line,) = lines(output)
    assert line["event"] == "notice.received"
    assert line["service"] == "test-svc"
    assert line["level"] == "info"
    assert line["logger"] == "tests.redaction"
    assert line["ts"].endswith("Z")
    assert line["notice_id"] == "n-1"
    assert line["name"] == "intake"  # a bare `name` is not restricted
    assert line["agent_name"] == REDACTED
    assert line["agentPhone"] == REDACTED
    assert line["details"] == {"restricted": REDACTED, "releasable": "Eastside district"}
    assert line["items"][0] == {"plates": REDACTED}
    assert line["items"][1] == {"vehicle": REDACTED}
    assert line["items"][2] == "plain"
    assert line["headers"] == [["authorization", REDACTED], ["accept", "*/*"]]


def test_pydantic_validation_error_input_values_scrubbed(output: io.StringIO) -> None:
    secret = canary()
    log = get_logger("tests.validation")
    with pytest.raises(ValidationError) as caught:
        Notice.model_validate(
            {"notice_id": "n-2", "window_hours": secret, "agent_name": 7, "extra": {"x": secret}}
        )
    try:
        raise caught.value
    except ValidationError as exc:
        log.exception("intake.rejected", notice_id="n-2", error=str(exc), cause=exc)
    text = output.getvalue()
    assert_absent(text, secret)
    (line,) = lines(output)
    assert "input_value=[REDACTED]" in line["exception"]
    assert "ValidationError" in line["exception"]
    assert "window_hours" in line["exception"]  # which field failed is still there
    assert "input_value=[REDACTED]" in line["error"]
    assert line["notice_id"] == "n-2"


def test_model_objects_logged_as_values_are_redacted_by_key(output: io.StringIO) -> None:
    secret = canary()
    get_logger("tests.model").info(
        "notice.loaded", notice=Notice(notice_id="n-3", window_hours=2, agent_name=secret)
    )
    assert_absent(output.getvalue(), secret)
    (line,) = lines(output)
    assert line["notice"] == {"notice_id": "n-3", "window_hours": 2, "agent_name": REDACTED}


def test_stdlib_records_from_libraries_share_the_shape_and_redaction(
    output: io.StringIO,
) -> None:
    secrets = [canary() for _ in range(4)]
    register_sensitive_value(secrets[2])
    try:
        try:
            Notice.model_validate({"notice_id": "n", "window_hours": secrets[0], "agent_name": "x"})
        except ValidationError:
            logging.getLogger("uvicorn.error").exception(
                "Exception in ASGI application",
                extra={"person_name": secrets[1], "topic": "aviso.notices.v1"},
            )
        logging.getLogger("uvicorn.error").warning("lookup for %s failed", secrets[2])
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            f"/v1/alerts/a-1/ack?token={secrets[3]}&lang=es",
            "1.1",
            200,
        )
    finally:
        forget_sensitive_value(secrets[2])
    assert_absent(output.getvalue(), *secrets)
    error, warning, access = lines(output)
    assert error["logger"] == "uvicorn.error"
    assert error["service"] == "test-svc"
    assert error["level"] == "error"
    assert error["topic"] == "aviso.notices.v1"
    assert error["person_name"] == REDACTED
    assert "input_value=[REDACTED]" in error["exception"]
    assert warning["event"] == f"lookup for {REDACTED} failed"
    assert access["event"].startswith('127.0.0.1:5000 - "GET /v1/alerts/a-1/ack?token=[REDACTED]')
    assert "lang=es" in access["event"]


def test_a_retried_coordinator_lookup_is_a_warning_and_a_final_one_an_error(
    output: io.StringIO,
) -> None:
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    failed = "Group Coordinator Request failed: %s"
    coordinator.error(failed, GroupCoordinatorNotAvailableError())  # retried by aiokafka
    coordinator.error(failed, GroupAuthorizationFailedError())  # not retriable
    retried, final = lines(output)
    assert (retried["level"], final["level"]) == ("warning", "error")
    assert "GroupCoordinatorNotAvailableError" in retried["event"]


def test_sqlalchemy_error_parameters_scrubbed(output: io.StringIO) -> None:
    secret = canary()
    engine = sa.create_engine("sqlite://")
    table = sa.Table("t", sa.MetaData(), sa.Column("v", sa.String, unique=True))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert().values(v=secret))
    with engine.connect() as conn:
        try:
            conn.execute(table.insert().values(v=secret))
        except sa.exc.IntegrityError:
            get_logger("tests.db").exception("db.insert_failed")
    engine.dispose()
    assert_absent(output.getvalue(), secret)
    (line,) = lines(output)
    assert "[parameters: [REDACTED]]" in line["exception"]
    assert "UNIQUE constraint failed" in line["exception"]


def test_values_registered_together_are_scrubbed_and_forgotten_together(
    output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = log_redaction._sensitive_values
    changes = 0
    publish = registry._publish

    def counted() -> None:
        nonlocal changes
        changes += 1
        publish()

    monkeypatch.setattr(registry, "_publish", counted)
    phone, plate, name = "+1 555 0100 " + uuid.uuid4().hex[:6], uuid.uuid4().hex[:8], canary()
    shared = f"shared-{uuid.uuid4().hex}"
    log = get_logger("tests.registry")
    register_sensitive_values([phone, plate, name, shared, "ab"])  # "ab": too short to hold
    register_sensitive_values([shared])  # a second request holds it too
    try:
        assert changes == 1  # the second batch added nothing new: no change to publish
        log.info("rumor.text", text=f"{name} at {phone} in {plate}, {shared}; ab")
        forget_sensitive_values([phone, plate, name, shared, "ab"])
        assert changes == 2
        log.info("rumor.text", text=f"still {shared}, not {plate}")
    finally:
        forget_sensitive_values([shared])
    first, second = lines(output)
    assert first["text"] == f"{REDACTED} at {REDACTED} in {REDACTED}, {REDACTED}; ab"
    assert second["text"] == f"still {REDACTED}, not {plate}"
    assert shared not in registry.snapshot
    assert name not in registry.snapshot
    with pytest.raises(TypeError, match="not one string"):
        register_sensitive_values(name)  # would hold its characters, not the name


def test_registered_values_scrubbed_until_forgotten(output: io.StringIO) -> None:
    held = canary()
    released = f"released-{uuid.uuid4().hex}"
    log = get_logger("tests.registry")
    register_sensitive_value(held)
    register_sensitive_value(released)
    register_sensitive_value(released)  # two handlers hold it at once
    try:
        log.info("rumor.text", text=f"seen near {held}", nested={"k": [f"x {released} y"]})
        forget_sensitive_value(released)
        log.info("rumor.text", text=f"still {released}")  # one holder remains
        forget_sensitive_value(released)
        log.info("rumor.text", text=f"now {released}")
    finally:
        forget_sensitive_value(held)
    first, second, third = lines(output)
    assert first["text"] == f"seen near {REDACTED}"
    assert first["nested"] == {"k": [f"x {REDACTED} y"]}
    assert second["text"] == f"still {REDACTED}"
    assert third["text"] == f"now {released}"
    assert_absent(output.getvalue(), held)


def test_values_are_held_from_entering_the_block_to_leaving_it_however_it_ends(
    output: io.StringIO,
) -> None:
    """Held on entry (not when the holder is made), released on the way out, an error's
    too; a lone string is refused where it is given."""
    registry = log_redaction._sensitive_values
    name = canary()
    log = get_logger("tests.registry")
    holder = holding_sensitive_values([name])
    log.info("rumor.text", text=f"before {name}")

    def fails_inside() -> None:
        with holder:
            log.info("rumor.text", text=f"inside {name}")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fails_inside()
    log.info("rumor.text", text=f"after {name}")
    before, inside, after = lines(output)
    assert before["text"] == f"before {name}"
    assert inside["text"] == f"inside {REDACTED}"
    assert after["text"] == f"after {name}"
    assert name not in registry.snapshot
    assert not registry.pending
    with pytest.raises(TypeError):
        holding_sensitive_values(name)


def test_values_held_for_a_block_are_sorted_in_only_when_a_line_may_hold_them(
    output: io.StringIO,
) -> None:
    registry = log_redaction._sensitive_values
    name, spaced, other = canary(), f"Ana {uuid.uuid4().hex[:6]} Pérez", canary()
    log = get_logger("tests.registry")
    with holding_sensitive_values([name, spaced, "ab"]):  # "ab": too short to hold
        assert name not in registry.held.values  # set aside as one group
        log.info("notice.checked", notice_id="n-1", status="Exercise")
        assert name not in registry.held.values  # no value of it could be in that line
        log.info("rumor.text", text=f"seen {name} with {spaced}; ab")
        assert name in registry.held.values  # sorted in for the line that might hold one
        with holding_sensitive_values([other]):
            log.info("notice.checked", notice_id=other)
        assert other not in registry.snapshot
        assert not registry.pending
    log.info("rumor.text", text=f"after {name} and {spaced}")
    checked, seen, held_line, after = lines(output)
    assert checked["notice_id"] == "n-1"
    assert seen["text"] == f"seen {REDACTED} with {REDACTED}; ab"
    assert held_line["notice_id"] == REDACTED
    assert after["text"] == f"after {name} and {spaced}"  # released: no longer scrubbed
    assert name not in registry.snapshot
    assert spaced not in registry.snapshot
    assert not registry.pending


def test_a_group_being_folded_is_seen_by_a_reader_at_every_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A line written by another thread reads the registry without its lock: while a fold
    # runs, each value must be in the pending groups or in the sorted values.
    registry = held_values.SensitiveValues(max_entries=64)
    first, second = canary(), canary()
    registry.hold([first])
    registry.hold([second])
    seen: list[bool] = []
    register = registry._register_locked

    def watched(values: Any) -> None:
        seen.extend(log_redaction._may_hold_a_value(v, registry) for v in (first, second))
        register(values)
        seen.extend(log_redaction._may_hold_a_value(v, registry) for v in (first, second))

    monkeypatch.setattr(registry, "_register_locked", watched)
    assert set(registry.folded().values) == {first, second}
    assert seen == [True] * 8
    assert not registry.pending


def test_registry_is_bounded() -> None:
    registry = held_values.SensitiveValues(max_entries=3)
    for value in ["aaa", "bbb", "ccc", "ddd"]:
        registry.register(value)
    assert set(registry.snapshot) == {"bbb", "ccc", "ddd"}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.sampled_from(["abc", "abcd", "xyz", "wxyz", "hello", "b" * 9, "a b", "Pérez"]),
        ),
        max_size=60,
    )
)
def test_registry_keeps_the_held_values_longest_first(steps: list[tuple[bool, str]]) -> None:
    """Whatever comes and goes, the snapshot is what is held (by count, within the bound),
    longest first: a value that contains another is replaced whole."""
    registry = held_values.SensitiveValues(max_entries=4)
    counts: dict[str, int] = {}  # the model: insertion order is the LRU order
    for register, value in steps:
        if register:
            counts[value] = counts.pop(value, 0) + 1
            while len(counts) > 4:
                del counts[next(iter(counts))]
            registry.register(value)
        else:
            if counts.get(value, 0) > 1:
                counts[value] -= 1
            else:
                counts.pop(value, None)
            registry.forget(value)
        assert sorted(registry.snapshot) == sorted(counts)
        # The plain ones apart, also when one comes in as another is pushed out.
        assert set(registry.held.plain) == {v for v in counts if " " not in v and "é" not in v}
        lengths = [len(v) for v in registry.snapshot]
        assert lengths == sorted(lengths, reverse=True)


def _scrub_value_by_value(text: str, values: tuple[str, ...]) -> str:
    """The scrub as it was before the plain-text filter: every held value asked, in order."""
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    if log_redaction._MAY_NEED_SCRUBBING.search(text) is None:
        return text
    for pattern, replacement in log_redaction._TEXT_SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


@contextlib.contextmanager
def _own_registry() -> Iterator[held_values.SensitiveValues]:
    """A registry of this test's own for `scrub_text` (the process's is left as it was)."""
    registry = held_values.SensitiveValues(max_entries=64)
    saved = log_redaction._sensitive_values
    log_redaction._sensitive_values = registry
    try:
        yield registry
    finally:
        log_redaction._sensitive_values = saved


# Plain characters, the ones the filter looks for beside them (a space, "@", an accent),
# regex metacharacters, and the characters of the replacement itself.
_VALUE_ALPHABET = "ab1-._:/ZT @é[]()*+?|^$\\REDACT"


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_one_search_for_all_held_values_answers_as_asking_each_value(data: st.DataObject) -> None:
    """Whatever is held (overlapping, containing one another, regex metacharacters, parts
    of the replacement) and whatever the text, the scrub answers as asking each held value
    in turn did."""
    bases = data.draw(st.lists(st.text(_VALUE_ALPHABET, min_size=3, max_size=8), max_size=6))
    values = list(bases)
    for base in bases:  # values inside others, and values overlapping others' ends
        start = data.draw(st.integers(0, len(base) - 1))
        end = data.draw(st.integers(start + 1, len(base)))
        values.append(base[start:end] + data.draw(st.text(_VALUE_ALPHABET, max_size=3)))
    pieces = st.one_of(st.sampled_from(values or ["x"]), st.text(_VALUE_ALPHABET, max_size=6))
    texts = data.draw(st.lists(st.lists(pieces, max_size=6).map("".join), max_size=8))
    with _own_registry() as registry:
        for value in values:
            if len(value.strip()) >= 3:
                registry.register(value)
        held = registry.snapshot
        assert set(registry.held.plain) == {
            v for v in held if held_values.PLAIN_CHARACTERS.issuperset(v)
        }
        for text in texts:
            assert log_redaction.scrub_text(text) == _scrub_value_by_value(text, held)
        line = {f"field_{n}": text for n, text in enumerate(texts)}
        assert log_redaction.redact_restricted(None, "info", dict(line)) == {
            key: _scrub_value_by_value(text, held) for key, text in line.items()
        }
        for value in values[::2]:
            registry.forget(value)
        held = registry.snapshot
        for text in texts:
            assert log_redaction.scrub_text(text) == _scrub_value_by_value(text, held)
        assert log_redaction.redact_restricted(None, "info", dict(line)) == {
            key: _scrub_value_by_value(text, held) for key, text in line.items()
        }


def test_plain_values_held_among_hundreds_never_reach_a_line(tmp_path: Path) -> None:
    """Values of id-like characters only (a phone, a plate, a canary) are found inside ids,
    paths and timestamps, at the top of a line and nested, with hundreds of others held;
    neither the terminal nor the log file sees any."""
    buffer = io.StringIO()
    log_file = tmp_path / "svc.jsonl"
    configure_logging("test-svc", fmt="json", stream=buffer, log_file=log_file, force=True)
    others = [f"Person {n} Alameda Ave" for n in range(200)] + [
        f"505-{n:03d}-0199" for n in range(120)
    ]
    phone, plate, token = "505-555-0199", "7XYZ123", canary()
    planted = [phone, plate, token]
    for value in others + planted:
        register_sensitive_value(value)
    try:
        get_logger("tests.plain").info(
            "notice.received",
            notice_id=f"4d96d85c-{phone}-62536bfbcba4",
            http_path=f"/v1/notices/{plate}/update",
            reference=token,
            version=1,
            nested={"k": [f"x{plate}y", (f"{token}", 2)]},
            free=f"call {phone} now",
        )
    finally:
        for value in others + planted:
            forget_sensitive_value(value)
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
    (line,) = lines(buffer)
    assert line["notice_id"] == f"4d96d85c-{REDACTED}-62536bfbcba4"
    assert line["http_path"] == f"/v1/notices/{REDACTED}/update"
    assert line["reference"] == REDACTED
    assert line["nested"] == {"k": [f"x{REDACTED}y", [REDACTED, 2]]}
    assert line["free"] == f"call {REDACTED} now"
    assert line["version"] == 1
    for written in (buffer.getvalue(), log_file.read_text(encoding="utf-8")):
        assert_absent(written, *planted)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "?",
                "&",
                "=",
                "[",
                "]",
                ":",
                " ",
                "_",
                "input",
                "value",
                "parameters",
                "avs",
                "b",
                "B",
                "e",
                "E",
                "a",
                "A",
                "r",
                "R",
                "bearer",
                "BeArEr",
                "é",
                "ß",
                "K",
                "x",
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_the_pattern_filter_answers_as_its_regex(text: str) -> None:
    """The str searches that spare a text the leaky-pattern scrubbers say what the regex
    said (a miss would let a token or a query string through)."""
    expected = log_redaction._MAY_NEED_SCRUBBING.search(text) is not None
    assert log_redaction._may_need_pattern_scrubbing(text) is expected


def test_a_line_is_encoded_as_json_dumps_wrote_it() -> None:
    """One encoder for every line; the bytes are what `json.dumps` wrote before."""
    event = {
        "ts": "2026-11-29T02:00:00.000001Z",
        "event": "boletín.publicado",
        "ratio": 0.1 + 0.2,
        "n": 10**20,
        "ok": None,
        "nested": {"k": [1, "ñ", {"x": True}], "nan": float("nan")},
        "at": uuid.UUID(int=7),
        "quote": 'a "b" \\ c\n',
    }
    rendered = log_setup._json_renderer()(None, "info", event)
    assert rendered == json.dumps(event, ensure_ascii=False, default=str)
    assert "\n" not in rendered


def test_faststream_logger_extra_becomes_fields(output: io.StringIO) -> None:
    secret = canary()
    logger = faststream_logger()
    logger.log(
        logging.INFO,
        "Received",
        extra={"topic": "aviso.alerts.v1", "group_id": "", "message_id": "m-1"},
    )
    try:
        Notice.model_validate({"notice_id": "n", "window_hours": secret, "agent_name": "x"})
    except ValidationError as exc:
        logger.log(
            logging.ERROR,
            f"ValidationError: {exc}",
            exc_info=exc,
            extra={"topic": "aviso.alerts.v1", "message_id": "m-1", "event": "clash"},
        )
    assert_absent(output.getvalue(), secret)
    received, failed = lines(output)
    assert received["event"] == "Received"
    assert received["logger"] == "faststream"
    assert received["topic"] == "aviso.alerts.v1"
    assert received["message_id"] == "m-1"
    assert "group_id" not in received  # FastStream's empty placeholders are dropped
    assert failed["level"] == "error"
    assert failed["faststream_event"] == "clash"
    assert "input_value=[REDACTED]" in failed["event"]
    assert "input_value=[REDACTED]" in failed["exception"]


def test_faststream_set_level_filters(output: io.StringIO) -> None:
    logger = faststream_logger()
    logger.setLevel(logging.WARNING)
    try:
        logger.log(logging.INFO, "Received", extra={})
        logger.log(logging.WARNING, "Slow", extra={})
    finally:
        logger.setLevel(logging.NOTSET)
    assert [line["event"] for line in lines(output)] == ["Slow"]


def test_faststream_task_callback_line_is_debug(output: io.StringIO) -> None:
    # FastStream's supervisor logs this at INFO as every subscriber task ends (each stop).
    logger = faststream_logger()
    logger.log(logging.INFO, "callback for Task-17 is being executed...", extra={})
    logger.log(logging.INFO, "callback for a task, said otherwise", extra={})
    logger.log(logging.ERROR, "callback for Task-18 is being executed...", extra={})
    seen = [(line["level"], line["event"]) for line in lines(output)]
    assert seen == [
        ("debug", "callback for Task-17 is being executed..."),
        ("info", "callback for a task, said otherwise"),
        ("error", "callback for Task-18 is being executed..."),
    ]


def test_faststream_task_callback_line_hidden_at_info(output: io.StringIO) -> None:
    configure_logging("test-svc", level="INFO", fmt="json", stream=output, force=True)
    faststream_logger().log(logging.INFO, "callback for Task-3 is being executed...", extra={})
    faststream_logger().log(logging.INFO, "Received", extra={})
    assert [line["event"] for line in lines(output)] == ["Received"]


def test_context_binding(output: io.StringIO) -> None:
    log = get_logger("tests.context")
    bind_context(correlation_id="corr-1")
    with bound(message_id="m-9", topic="aviso.notices.v1"):
        log.info("inside")
    log.info("outside")
    clear_context()
    log.info("cleared")
    inside, outside, cleared = lines(output)
    assert inside["correlation_id"] == "corr-1"
    assert inside["message_id"] == "m-9"
    assert inside["topic"] == "aviso.notices.v1"
    assert outside["correlation_id"] == "corr-1"
    assert "message_id" not in outside
    assert "correlation_id" not in cleared


def test_log_file_receives_json_lines_too(tmp_path: Path) -> None:
    secret = canary()
    buffer = io.StringIO()
    log_file = tmp_path / "var" / "log" / "intake.jsonl"
    log_file.parent.mkdir(parents=True)
    log_file.write_text('{"earlier": "line"}\n')
    configure_logging("intake", fmt="console", stream=buffer, log_file=log_file, force=True)
    try:
        get_logger("tests.file").warning("notice.stored", notice_id="n-5", address=secret)
        logging.getLogger("aiokafka").info("rebalance chatter")  # quietened to WARNING
        logging.getLogger("aiokafka").warning("coordinator lost")
    finally:
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
    file_lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert file_lines[0] == {"earlier": "line"}  # appended, not truncated
    assert [line["event"] for line in file_lines[1:]] == ["notice.stored", "coordinator lost"]
    assert file_lines[1]["address"] == REDACTED
    assert file_lines[1]["service"] == "intake"
    console = buffer.getvalue()
    assert "notice.stored" in console
    assert not console.lstrip().startswith("{")  # the console renderer, not JSON
    assert_absent(console + log_file.read_text(), secret)


def test_json_to_the_terminal_and_the_file_is_rendered_once_and_written_to_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, value = canary(), canary()
    renders = 0
    real_render = log_setup._order_keys

    def counting(logger: Any, method_name: str, event_dict: Any) -> Any:
        nonlocal renders
        renders += 1
        return real_render(logger, method_name, event_dict)

    monkeypatch.setattr(log_setup, "_order_keys", counting)
    buffer = io.StringIO()
    log_file = tmp_path / "intake.jsonl"
    configure_logging("intake", fmt="json", stream=buffer, log_file=log_file, force=True)
    register_sensitive_value(value)
    try:
        get_logger("tests.both").info(
            "notice.received", notice_id="n-6", agent_phone=secret, summary=f"seen {value}"
        )
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    finally:
        forget_sensitive_value(value)
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
    # One handler: each line went through the formatter once, and both outputs hold it.
    assert renders == 2
    assert buffer.getvalue() == log_file.read_text()
    first, second = (json.loads(line) for line in log_file.read_text().splitlines())
    assert (first["event"], first["agent_phone"]) == ("notice.received", REDACTED)
    assert first["summary"] == f"seen {REDACTED}"
    assert second["event"] == "Started server process [7]"
    assert_absent(buffer.getvalue() + log_file.read_text(), secret, value)


def test_our_own_line_is_rendered_as_structlog_renders_it_without_a_copy_of_its_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = canary()
    copies = 0
    real_copy = logging.makeLogRecord

    def counting(attributes: dict[str, Any]) -> logging.LogRecord:
        nonlocal copies
        copies += 1
        return real_copy(attributes)

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    monkeypatch.setattr(logging, "makeLogRecord", counting)
    buffer = io.StringIO()
    configure_logging("intake", fmt="json", stream=buffer, force=True)
    keep = Keep()  # another handler after ours: what it is handed must be the record
    logging.getLogger().addHandler(keep)
    try:
        with bound(correlation_id="c-7"):
            get_logger("tests.lean").info(
                "notice.received", notice_id="n-7", agent_name=secret, http_status=201
            )
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 8)
    finally:
        logging.getLogger().removeHandler(keep)
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False
    # Only the stdlib record was copied (by ProcessorFormatter, as before).
    assert copies == 1
    ours, foreign = buffer.getvalue().splitlines()
    record = keep.records[0]
    assert isinstance(record.msg, dict)
    assert record.msg["event"] == "notice.received"
    # Byte for byte what structlog's own formatter renders from the same record.
    reference = structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            log_setup._order_keys,
            log_setup._render_json,
        ]
    )
    assert ours == reference.format(record)
    line = json.loads(ours)
    assert list(line)[:5] == ["ts", "level", "service", "logger", "event"]
    assert (line["agent_name"], line["correlation_id"]) == (REDACTED, "c-7")
    assert json.loads(foreign)["event"] == "Started server process [8]"
    assert_absent(buffer.getvalue(), secret)


def test_text_without_any_scrubber_trigger_is_returned_as_is() -> None:
    assert log_redaction.scrub_text("notice.received n-1 District 4") == (
        "notice.received n-1 District 4"
    )
    assert log_redaction.scrub_text("GET /ack?token=abc&x=1") == f"GET /ack?token={REDACTED}&x=1"
    assert REDACTED in log_redaction.scrub_text("Authorization: BEARER abc.def")


def test_second_configure_is_a_noop_without_force(output: io.StringIO) -> None:
    other = io.StringIO()
    configure_logging("someone-else", fmt="json", stream=other)
    get_logger("tests.idempotent").info("still.here")
    assert other.getvalue() == ""
    (line,) = lines(output)
    assert line["service"] == "test-svc"


def test_add_restricted_keys_extends_the_set(output: io.StringIO) -> None:
    secret = canary()
    assert not is_restricted_key("informant_code")
    add_restricted_keys("Informant-Code")
    try:
        assert is_restricted_key("informant_code")
        assert is_restricted_key("informantCode")
        get_logger("tests.extend").info("rumor.reported", informant_code=secret)
    finally:
        aviso_logging.RESTRICTED_KEYS.discard("informant_code")
    assert_absent(output.getvalue(), secret)


@pytest.mark.parametrize(
    ("key", "restricted"),
    [
        ("name", False),
        ("service", False),
        ("topic_name", False),
        ("notice_id", False),
        ("token_id", False),
        ("microphone", False),
        ("person_name", True),
        ("agent_email", True),
        ("X-Api-Key", True),
        ("Authorization", True),
        ("restricted_anything", True),
        ("exactLocations", True),
        ("db_password", True),
        ("set_cookie", True),
    ],
)
def test_key_classification(key: str, restricted: bool) -> None:
    assert is_restricted_key(key) is restricted


def test_httpx_request_lines_are_not_written(output: io.StringIO) -> None:
    """httpx logs each request's URL at INFO (Kannel's sendsms URL holds the number and
    the gateway's password): those lines are dropped; its warnings still come through."""
    number = "+1505" + canary()[-7:]
    logging.getLogger("httpx").info(
        'HTTP Request: GET http://127.0.0.1:13013/cgi-bin/sendsms?to=%s "HTTP/1.1 202"', number
    )
    logging.getLogger("httpx").warning("connection pool is full")
    assert number not in output.getvalue()
    (warning,) = lines(output)
    assert warning["logger"] == "httpx"
    assert warning["event"] == "connection pool is full"


def test_top_level_fields_get_the_same_answers_inline_as_the_whole_way(
    output: io.StringIO,
) -> None:
    """The processor decides a line's plain fields inline; each kind keeps its answer."""
    held = canary()
    log = get_logger("tests.inline")
    register_sensitive_value(held)
    try:
        log.info("a.line", seen=f"near {held}", count=3, ratio=0.5, ok=True, gone=None)
    finally:
        forget_sensitive_value(held)
    log.info(
        "a.line",
        alert_id="4d96d85c-264c-5f8c-bde9-62536bfbcba4",
        url="https://x.test/ack?token=abc",
        header="Bearer abc.def",
        agent_name="A. Person",
        at=uuid.UUID(int=7),
    )
    first, second = lines(output)
    assert first["seen"] == f"near {REDACTED}"
    assert (first["count"], first["ratio"], first["ok"], first["gone"]) == (3, 0.5, True, None)
    assert second["alert_id"] == "4d96d85c-264c-5f8c-bde9-62536bfbcba4"
    assert second["url"] == f"https://x.test/ack?token={REDACTED}"
    assert second["header"] == f"Bearer {REDACTED}"
    assert second["agent_name"] == REDACTED
    assert second["at"] == str(uuid.UUID(int=7))
    assert_absent(output.getvalue(), held, "abc.def")


def test_records_leave_out_what_no_line_renders(output: io.StringIO) -> None:
    """No caller look-up (a walk up the stack), thread or process names per record."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        get_logger("tests.lean").info("a.line", n=1)
    finally:
        logging.getLogger().removeHandler(keep)
    (record,) = records
    assert (record.lineno, record.funcName) == (0, "(unknown function)")
    assert record.threadName is None
    assert record.processName is None
    assert record.process is None
    assert lines(output)[0]["event"] == "a.line"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_values_held_aside_are_scrubbed_as_registered_values_are(data: st.DataObject) -> None:
    """Values some holders set aside (`hold`) and others registered: whatever the text, the
    scrub answers as if every value had been registered in that order; released, they are
    gone and the registered ones stay."""
    bases = data.draw(st.lists(st.text(_VALUE_ALPHABET, min_size=3, max_size=8), max_size=8))
    split = data.draw(st.integers(0, len(bases)))
    registered, aside = bases[:split], bases[split:]
    groups = [aside[0::2], aside[1::2]]  # two holders
    pieces = st.one_of(st.sampled_from(bases or ["x"]), st.text(_VALUE_ALPHABET, max_size=6))
    texts = data.draw(st.lists(st.lists(pieces, max_size=6).map("".join), max_size=8))
    reference = held_values.SensitiveValues(max_entries=64)
    with _own_registry() as registry:
        for value in registered:
            registry.register(value)
            reference.register(value)
        tokens = [registry.hold(group) for group in groups]
        for group in groups:
            reference.register_all(group)
        for text in texts:
            assert log_redaction.scrub_text(text) == _scrub_value_by_value(text, reference.snapshot)
        line = {f"field_{n}": text for n, text in enumerate(texts)}
        assert log_redaction.redact_restricted(None, "info", dict(line)) == {
            key: _scrub_value_by_value(text, reference.snapshot) for key, text in line.items()
        }
        for token in tokens:
            registry.release(token)
        assert not registry.pending
        assert sorted(registry.snapshot) == sorted(set(registered))
