"""Department policy as data: which statements apply to which notice."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.policy import DEFAULT_POLICY_FILE, NoticeFacts, Policy, load_policy


def facts(**overrides: Any) -> NoticeFacts:
    values: dict[str, Any] = {
        "operation_type": "targeted_arrest",
        "public_safety_nexus": True,
        "status": "Actual",
    }
    values.update(overrides)
    return NoticeFacts(**values)


POLICY = Policy.model_validate(
    {
        "version": "test",
        "rule": [
            {"code": "always", "text": "Always."},
            {"code": "worksite", "text": "No raids.", "when": {"operation_type": ["worksite"]}},
            {"code": "no_nexus", "text": "No help.", "when": {"public_safety_nexus": False}},
            {
                "code": "drill_worksite",
                "text": "Drill at a worksite.",
                "when": {"operation_type": ["worksite"], "status": ["Exercise", "Test"]},
            },
        ],
    }
)


def codes(policy: Policy, **overrides: Any) -> list[str]:
    return [a.code for a in policy.annotate(facts(**overrides))]


def test_rules_apply_when_every_condition_holds() -> None:
    assert codes(POLICY) == ["always"]
    assert codes(POLICY, operation_type="worksite") == ["always", "worksite"]
    assert codes(POLICY, public_safety_nexus=False) == ["always", "no_nexus"]
    assert codes(POLICY, operation_type="worksite", status="Test") == [
        "always",
        "worksite",
        "drill_worksite",
    ]


def test_the_shipped_policy_states_the_departments_commitments() -> None:
    policy = load_policy(DEFAULT_POLICY_FILE)
    worksite = {
        a.code: a.text
        for a in policy.annotate(facts(operation_type="worksite", public_safety_nexus=False))
    }
    assert "workplace raids" in worksite["no_worksite_raids"]
    assert "no department assistance" in worksite["no_department_assistance"]
    assert "no_detention_for_status" in worksite
    assert "drill" in codes(policy, status="Exercise")
    assert "drill" not in codes(policy, status="Actual")
    assert "no_department_assistance" not in codes(policy, public_safety_nexus=True)


@pytest.mark.parametrize(
    "bad",
    [
        {"version": "x", "rule": []},
        {"version": "x", "rule": [{"code": "Bad Code", "text": "t"}]},
        {"version": "x", "rule": [{"code": "c", "text": "t", "when": {"weekday": ["Monday"]}}]},
        {
            "version": "x",
            "rule": [{"code": "c", "text": "t", "when": {"operation_type": ["raid"]}}],
        },
        {"version": "x", "rule": [{"code": "c", "text": ""}]},
    ],
)
def test_a_malformed_policy_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Policy.model_validate(bad)


@pytest.mark.parametrize("operation_type", ["targeted_arrest", "worksite"])
@pytest.mark.parametrize("nexus", [True, False])
@pytest.mark.parametrize("status", ["Actual", "Exercise"])
def test_annotation_values_are_the_annotations_dumped(
    operation_type: str, nexus: bool, status: str
) -> None:
    policy = load_policy()
    for candidate in (POLICY, policy):
        expected = tuple(
            a.model_dump()
            for a in candidate.annotate(
                facts(operation_type=operation_type, public_safety_nexus=nexus, status=status)
            )
        )
        given = {"operation_type": operation_type, "public_safety_nexus": nexus, "status": status}
        assert candidate.annotation_values(**given) == expected  # type: ignore[arg-type]
        assert candidate.annotation_values(**given) == expected  # type: ignore[arg-type]


def test_annotation_values_are_worked_out_once_per_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = Policy.model_validate(POLICY.model_dump())  # its own, empty cache
    calls: list[NoticeFacts] = []
    real = Policy.annotate

    def counting(self: Policy, given: NoticeFacts) -> Any:
        calls.append(given)
        return real(self, given)

    monkeypatch.setattr(Policy, "annotate", counting)
    for _ in range(3):
        policy.annotation_values(
            operation_type="worksite", public_safety_nexus=False, status="Exercise"
        )
        policy.annotation_values(
            operation_type="worksite", public_safety_nexus=True, status="Exercise"
        )
    assert len(calls) == 2
    assert [
        c["code"]
        for c in policy.annotation_values(
            operation_type="worksite", public_safety_nexus=False, status="Exercise"
        )
    ] == ["always", "worksite", "no_nexus", "drill_worksite"]
