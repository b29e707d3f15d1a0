"""Property-based fuzzing of the POST bodies: never a 5xx, and nothing stored when rejected.

Bodies are valid notices with a few fields replaced, removed or added (hostile
strings, out-of-range dates, wrong types, deep structures), or arbitrary JSON. Each is
sent to create, update or cancel; every intake table is counted before and after.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.intake.intake_support import (
    OUTBOX_LEDGER,
    Intake,
    notice_body,
    revision_body,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

TABLES = (
    "notices",
    "notice_versions",
    OUTBOX_LEDGER,
    "audit_log",
    "idempotency_keys",
    "signature_replays",
)

# Places in a notice body a mutation may hit.
PATHS: tuple[tuple[str, ...], ...] = (
    ("reference",),
    ("received_via",),
    ("sent_at",),
    ("status",),
    ("operation_type",),
    ("public_safety_nexus",),
    ("window_start",),
    ("window_end",),
    ("area",),
    ("area_code",),
    ("summary",),
    ("source",),
    ("source", "field_office_name"),
    ("source", "agent"),
    ("source", "agent", "name"),
    ("source", "agent", "phone"),
    ("source", "agent", "email"),
    ("restricted",),
    ("restricted", "names"),
    ("restricted", "addresses"),
    ("restricted", "vehicles"),
    ("restricted", "exact_locations"),
    ("restricted", "free_text"),
    ("expected_version",),
    ("reason",),
)

HOSTILE_STRINGS = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "\ud800",
        "\udfff tail",
        "line\nbreak",
        "\u202eevil",
        "' OR 1=1 --",
        "Robert'); DROP TABLE notices;--",
        "%s%s%n",
        "{{7*7}}",
        "ñandú 漢字 \U0001f600",
        "A" * 201,
        "B" * 5000,
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2030-02-30T00:00:00Z",
        "2030-01-01T00:00:00",
        "2030-01-01T00:00:00+25:00",
        "1e309",
        "-0",
        "NaN",
        "Actual",
        "worksite",
        "operation_cancelled",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | HOSTILE_STRINGS
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = body
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(("replace", "replace", "delete", "extra")))
        if action == "replace":
            # Mostly plausible-looking strings, so validation deeper than the type runs.
            parent[path[-1]] = draw(st.one_of(HOSTILE_STRINGS, st.text(max_size=60), JSON))
        elif action == "delete":
            parent.pop(path[-1], None)
        else:
            parent[draw(st.text(min_size=1, max_size=12))] = draw(JSON)
    return body


TEXT_PATHS: tuple[tuple[str | int, ...], ...] = (
    ("reference",),
    ("area",),
    ("summary",),
    ("source", "field_office_name"),
    ("source", "agent", "name"),
    ("restricted", "names", 0),
    ("restricted", "addresses", 0),
    ("restricted", "vehicles", 0),
    ("restricted", "free_text"),
)


@st.composite
def odd_text(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A well-formed body whose free-form fields hold odd but often acceptable text."""
    body = copy.deepcopy(base)
    for path in draw(st.lists(st.sampled_from(TEXT_PATHS), min_size=1, max_size=4)):
        parent: Any = body
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else parent[key]
        if isinstance(parent, dict) and path[-1] not in parent:
            continue
        parent[path[-1]] = draw(HOSTILE_STRINGS | st.text(min_size=1, max_size=80))
    return body


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Any]:
    endpoint = draw(st.sampled_from(("create", "create", "update", "cancel")))
    base = notice_body(reference="FUZZ-1")
    if endpoint == "update":
        base = revision_body(base)
    elif endpoint == "cancel":
        base = {"reason": "operation_cancelled", "received_via": "phone"}
    if endpoint == "cancel":
        body = draw(st.one_of(mutated(base), JSON))
    else:
        body = draw(st.one_of(mutated(base), odd_text(base), odd_text(base), JSON))
    return endpoint, body


# Audit entries are written to audit_pending and moved into audit_log by the sealer,
# which may run between two counts: count both in one statement.
_AUDIT_ENTRIES = "SELECT (SELECT COUNT(*) FROM audit_log) + (SELECT COUNT(*) FROM audit_pending)"


async def _counts(intake: Intake) -> dict[str, int]:
    async with intake.deps.unit_of_work() as uow:
        session = uow.session
        return {
            table: int(
                (
                    await session.execute(
                        sa.text(
                            _AUDIT_ENTRIES
                            if table == "audit_log"
                            else f'SELECT COUNT(*) FROM "{table}"'
                        )
                    )
                ).scalar_one()
            )
            for table in TABLES
        }


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
async def test_fuzzed_bodies_never_fail_the_server_and_store_nothing_when_rejected(
    intake: Intake, request: tuple[str, Any]
) -> None:
    endpoint, body = request
    auth = intake.auth("field_office")
    path = "/v1/notices"
    if endpoint != "create":
        target = await intake.submit(notice_body())
        assert target.status_code == 201
        path = f"/v1/notices/{target.json()['id']}/{endpoint}"
    before = await _counts(intake)
    # json.dumps escapes lone surrogates (\\ud800) as JSON allows; httpx's encoder would fail.
    content = json.dumps(body).encode("ascii")
    headers = {**auth, "Content-Type": "application/json"}
    response = await intake.client.post(path, content=content, headers=headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert await _counts(intake) == before
    else:
        assert response.status_code in (200, 201)
        assert response.json()["id"]
