"""A submission's statement binds the version's references and policy statements as the JSON
type writes them, encoding each shared object once (fast_writes._RepeatedJSON)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from services.intake import fast_writes
from services.intake.domain import Transition
from services.intake.notices import submission as submission_module
from services.intake.notices.sealing import restricted_detail
from tests.unit.intake.fakes import FIELD_OFFICE, NOW, make_deps
from tests.unit.intake.test_notices_use_cases import submission

DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
DEPS = make_deps()  # one policy: its statements one shared tuple per set of facts


def _transition(reference: str) -> Transition:
    deps = DEPS
    body = submission(reference)
    detail = restricted_detail(body, FIELD_OFFICE)
    return submission_module._new_notice(
        deps,
        notice_id="6f1c3c0e-8f0e-4a55-9a55-3c3f3f3f3f3f",
        owner="owner",
        submission=body,
        detail=detail,
        digest="d" * 64,
        actor=FIELD_OFFICE,
        now=NOW,
    )


def _bound(transition: Transition) -> dict[str, Any]:
    statement, values, _, _ = fast_writes._prepared(
        transition, now=datetime.now(UTC), event_source="intake", taker=None
    )
    compiled = statement.compiled(DIALECT)
    return dict(zip(compiled.names, compiled.arguments(values), strict=True))


def test_the_versions_json_columns_are_bound_as_the_json_type_writes_them() -> None:
    transition = _transition("ERO-JSON-1")
    version = transition.version
    assert version is not None
    by_name = _bound(transition)
    assert by_name["v_version_refs"] == json.dumps(list(version.version_refs))
    assert by_name["v_policy_annotations"] == json.dumps(
        [dict(a) for a in version.policy_annotations]
    )
    statement = fast_writes._prepared(transition, now=NOW, event_source="intake", taker=None)[0]
    compiled = statement.compiled(DIALECT)
    for name in ("v_version_refs", "v_policy_annotations"):
        position = compiled.names.index(name) + 1
        assert f"${position}::JSON" in compiled.sql  # cast as the column's own type is


def test_a_shared_value_is_encoded_once_and_another_object_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept: dict[int, tuple[Any, Any]] = {}
    monkeypatch.setattr(fast_writes, "_encoded", kept)  # on main there is none to keep
    first = _transition("ERO-JSON-2")
    assert first.version is not None
    statements = first.version.policy_annotations
    _bound(first)
    assert kept[id(statements)] == (statements, json.dumps(list(statements)))
    # Marked: a second submission with the same facts binds the kept text, not a new one.
    kept[id(statements)] = (statements, "kept")
    second = _transition("ERO-JSON-3")
    version = second.version
    assert version is not None
    assert version.policy_annotations is statements
    assert _bound(second)["v_policy_annotations"] == "kept"
    # Equal statements in another object (a policy reloaded): encoded, and the new text bound.
    other = tuple({**a, "text": a["text"] + " (v2)"} for a in statements)
    changed = replace(second, version=replace(version, policy_annotations=other))
    assert _bound(changed)["v_policy_annotations"] == json.dumps(list(other))
