"""The department's written policy as data: which statements apply to which notice.

The rules live in `policy.toml` (or the file `AVISO_INTAKE_POLICY_FILE` names) so the
policy owner can change wording without a code change. `annotate` is pure: the
statements that apply are frozen onto each notice version when it is recorded, so a
later policy edit never rewrites what the SPOC was shown for an earlier notice.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from schemas.base import PolicyAnnotation, ReasonCode, ReleasableText, Status
from schemas.notices import OperationType

__all__ = [
    "DEFAULT_POLICY_FILE",
    "NoticeFacts",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "load_policy",
]

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")


class PolicyError(ValueError):
    """The policy file is missing or does not match the expected shape."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleCondition(_Strict):
    """When a rule applies; every condition given must hold."""

    operation_type: tuple[OperationType, ...] | None = None
    public_safety_nexus: bool | None = None
    status: tuple[Status, ...] | None = None


class NoticeFacts(_Strict):
    """What a rule can look at: releasable facts of one notice version."""

    operation_type: OperationType
    public_safety_nexus: bool
    status: Status


class PolicyRule(_Strict):
    """One statement of policy and when it applies."""

    code: ReasonCode
    text: ReleasableText
    when: RuleCondition = Field(default_factory=RuleCondition)

    def applies_to(self, facts: NoticeFacts) -> bool:
        """Whether every condition of this rule holds for `facts`."""
        when = self.when
        return (
            (when.operation_type is None or facts.operation_type in when.operation_type)
            and (
                when.public_safety_nexus is None
                or facts.public_safety_nexus == when.public_safety_nexus
            )
            and (when.status is None or facts.status in when.status)
        )


class Policy(_Strict):
    """The whole policy file."""

    version: str = Field(min_length=1, max_length=64)
    rule: tuple[PolicyRule, ...] = Field(min_length=1)
    _annotated: dict[tuple[str, bool, str], tuple[dict[str, str], ...]] = PrivateAttr(
        default_factory=dict
    )

    def annotate(self, facts: NoticeFacts) -> tuple[PolicyAnnotation, ...]:
        """The statements that apply to a notice, in the order the file lists them."""
        return tuple(
            PolicyAnnotation(code=rule.code, text=rule.text)
            for rule in self.rule
            if rule.applies_to(facts)
        )

    def annotation_values(
        self, *, operation_type: OperationType, public_safety_nexus: bool, status: Status
    ) -> tuple[dict[str, str], ...]:
        """`annotate` of these facts as a version stores them (shared: never mutate them)."""
        # A handful of fact combinations exist and the policy is frozen: each one's
        # statements are worked out once, not per submission (models built and dumped).
        key = (operation_type, public_safety_nexus, status)
        # Read from the private values' dict itself: `self._annotated` goes through
        # pydantic's `__getattr__` (~3.5 us, more than the rest of the call).
        annotated: dict[tuple[str, bool, str], tuple[dict[str, str], ...]]
        annotated = self.__pydantic_private__["_annotated"]  # type: ignore[index]
        found = annotated.get(key)
        if found is None:
            facts = NoticeFacts(
                operation_type=operation_type,
                public_safety_nexus=public_safety_nexus,
                status=status,
            )
            values = tuple(a.model_dump() for a in self.annotate(facts))
            found = annotated.setdefault(key, values)
        return found


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file; raises PolicyError with where it went wrong."""
    path = path or DEFAULT_POLICY_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"policy file {path} is invalid: {where}") from None
    codes = [rule.code for rule in policy.rule]
    if len(codes) != len(set(codes)):
        raise PolicyError(f"policy file {path} repeats a rule code")
    return policy
