"""A plain submission's body is parsed and validated in one pass (pydantic's JSON mode,
services/intake/http/plain_submission.py); FastAPI parses it with `json.loads` and then
validates. Where the one pass accepts a body, it must give what FastAPI's way gives, or a
plain submission would record another notice than the same request sent with a key.
Where it refuses, the request goes to FastAPI's handler, which answers as before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from benchmarks.hot_path.load import notice_body
from services.intake.notices.commands import NoticeSubmission

BODY = notice_body(datetime(2030, 1, 1, tzinfo=UTC))

# Values a field office (or an attacker) may put anywhere in the body.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["2030-01-02T10:00:00+02:00", "2030-01-02T10:00:00", "Actual", "Test"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
paths = st.sampled_from(
    [
        ("reference",),
        ("status",),
        ("public_safety_nexus",),
        ("window_start",),
        ("window_end",),
        ("area",),
        ("summary",),
        ("area_code",),
        ("received_via",),
        ("sent_at",),
        ("source", "agent", "name"),
        ("source", "agent", "phone"),
        ("restricted", "names"),
        ("restricted", "free_text"),
        ("extra_field",),
    ]
)


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps(body))
    place = changed
    for name in path[:-1]:
        place = place[name]
    place[path[-1]] = value
    return changed


def _both(raw: bytes) -> tuple[NoticeSubmission | None, NoticeSubmission | None]:
    try:
        one_pass: NoticeSubmission | None = NoticeSubmission.model_validate_json(raw)
    except ValidationError:
        one_pass = None
    try:
        fastapi_way: NoticeSubmission | None = NoticeSubmission.model_validate(json.loads(raw))
    except (ValidationError, ValueError):
        fastapi_way = None
    return one_pass, fastapi_way


@given(
    changes=st.lists(st.tuples(paths, json_values), max_size=3),
    ascii_only=st.booleans(),
)
def test_a_body_the_one_pass_accepts_is_the_one_fastapi_validates(
    changes: list[tuple[tuple[str, ...], Any]], ascii_only: bool
) -> None:
    body = BODY
    for path, value in changes:
        body = _with(body, path, value)
    one_pass, fastapi_way = _both(json.dumps(body, ensure_ascii=ascii_only).encode())
    if one_pass is not None:
        assert fastapi_way == one_pass
    elif fastapi_way is not None:
        pytest.fail("refused by the one pass only: a body of this shape is fine JSON")


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(BODY).encode().replace(b'"summary": "', b'"summary": "\\ud800', 1),
        b"\xef\xbb\xbf" + json.dumps(BODY).encode(),
        json.dumps(BODY).encode("utf-16"),
        json.dumps(BODY).encode()[:-1] + b', "area": "Other area"}',
    ],
    ids=["lone-surrogate", "bom", "utf-16", "duplicate-key"],
)
def test_bodies_json_mode_reads_otherwise_are_refused_or_read_alike(raw: bytes) -> None:
    one_pass, fastapi_way = _both(raw)
    # Refused by the one pass (FastAPI's handler then answers), or the same model.
    assert one_pass is None or one_pass == fastapi_way
