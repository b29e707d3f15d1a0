"""Settings of the intake service (environment variables prefixed AVISO_)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from services.common.settings import CommonSettings, is_development_secret

__all__ = ["IntakeSettings"]


class IntakeSettings(CommonSettings):
    """Aviso intake settings."""

    intake_port: int = Field(default=8001, description="HTTP port of the intake service.")
    intake_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Processes serving intake's port (PostgreSQL only). One of them runs the "
            "sweeper, the audit sealer and the directory consumer; see docs/operations.md."
        ),
    )
    intake_group_writers: int = Field(
        default=3,
        ge=1,
        le=20,
        description=(
            "Plain submissions a process writes at once on PostgreSQL. A submission that "
            "finds them all busy waits, and the next to finish writes every one waiting "
            "(up to 32) in one round trip and one commit; see docs/performance.md."
        ),
    )
    intake_encryption_keys: SecretStr | None = Field(
        default=None,
        description=(
            "AES-256-GCM keys for restricted detail at rest, `id:<base64 of 32 bytes>` separated "
            "by commas (e.g. `k1:...,k2:...`). Keep retired keys listed until no row uses them. "
            "Unset, with no key file either: a development key is generated under var_dir."
        ),
    )
    intake_encryption_key_file: Path | None = Field(
        default=None,
        description="File holding the same `id:<base64>` entries, one per line (# comments).",
    )
    intake_encryption_active_key_id: str | None = Field(
        default=None,
        description="Id of the key that encrypts new values; unset: the first key listed.",
    )
    intake_require_signature: bool = Field(
        default=False,
        description=(
            "Refuse POSTs without a valid `Aviso-Signature`. Unset, a signature is checked "
            "only when a request carries one."
        ),
    )
    intake_signing_secrets: list[SecretStr] = Field(
        default_factory=list,
        description=(
            "Secrets the field office's system signs requests with; list several while it "
            "rotates. JSON list in the environment."
        ),
    )
    intake_accept_body_only_signatures: bool = Field(
        default=False,
        description=(
            "Migration window only: also accept old `v1` signatures, which cover the body but "
            "not the method and path (a captured request would be valid on any endpoint)."
        ),
    )
    intake_signature_tolerance_s: int = Field(
        default=300, ge=1, description="Oldest accepted signature timestamp, in seconds."
    )
    intake_signature_future_skew_s: int = Field(
        default=30, ge=0, description="How far in the future a signature timestamp may be."
    )
    intake_expiry_grace_s: float = Field(
        default=2 * 3600.0,
        ge=0,
        description="A notice expires this long after the end of its operation window.",
    )
    intake_restricted_retention_s: float = Field(
        default=30 * 86400.0,
        ge=0,
        description=(
            "Restricted detail is purged this long after a notice was cancelled or expired; "
            "the record and its audit trail remain."
        ),
    )
    intake_idempotency_ttl_s: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="How long an Idempotency-Key is remembered (a reference is unique for good).",
    )
    intake_sweep_interval_s: float = Field(
        default=60.0, gt=0, description="How often the expiry and purge sweeper runs."
    )
    intake_audit_key: SecretStr = Field(
        default=SecretStr("aviso-dev-audit-key-change-me"),
        description=(
            "Key of the audit chain's HMAC (at least 32 bytes in production). Kept out of the "
            "database, so write access to it alone cannot forge the chain; `aviso audit "
            "verify` needs the same key."
        ),
    )
    intake_audit_seal_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the sealer chains newly written audit entries (in batches).",
    )
    intake_group_prefix: str = Field(
        default="intake",
        min_length=1,
        max_length=80,
        description=(
            "Prefix of intake's Kafka consumer group (`<prefix>.directory`, who is in the "
            "directory in force). Instances sharing a prefix share work."
        ),
    )
    intake_consumer_session_timeout_ms: int = Field(
        default=6_000,
        ge=1_000,
        description="How long Kafka waits for a silent intake member before another instance "
        "takes the directory topic's partitions (its heartbeats go every third of it). Longer "
        "than AVISO_CONSUMER_SESSION_TIMEOUT_MS: directory announcements are on no one's "
        "urgent path, so it heartbeats a third as often (each heartbeat is a request the "
        "broker answers). Kafka's own group.min.session.timeout.ms (6000 by default) must "
        "not exceed it.",
    )
    intake_consumer_fetch_max_wait_ms: int = Field(
        default=5_000,
        ge=1,
        le=30_000,
        description="Longest an idle intake member's fetch waits at the broker instead of "
        "AVISO_CONSUMER_FETCH_MAX_WAIT_MS: an announcement is answered as it lands whatever "
        "the wait, so a longer one means an empty fetch every 5 s instead of every second. "
        "A crashed instance's partitions then pass to another up to this much after its "
        "session ends (the survivor's next fetch queues behind the one in flight).",
    )
    intake_policy_file: Path | None = Field(
        default=None,
        description="Department policy annotations (TOML); unset: services/intake/policy.toml.",
    )

    def development_secrets(self) -> list[str]:
        """The common ones, published signing secrets, and development encryption keys."""
        found = super().development_secrets()
        if any(is_development_secret(secret) for secret in self.intake_signing_secrets):
            found.append("AVISO_INTAKE_SIGNING_SECRETS")
        keys = self.intake_encryption_keys
        if keys is None and self.intake_encryption_key_file is None:
            # Without either, a key is generated into var_dir: fine on a laptop only.
            found.append("AVISO_INTAKE_ENCRYPTION_KEYS")
        elif keys is not None and (
            is_development_secret(keys)
            or any(entry.strip().startswith("dev") for entry in keys.get_secret_value().split(","))
        ):
            # Key ids beginning `dev` name development keys (the generated one, compose's).
            found.append("AVISO_INTAKE_ENCRYPTION_KEYS")
        return found

    @model_validator(mode="after")
    def _workers_need_postgres(self) -> Self:
        # SQLite keeps one connection per process: several would take turns on its lock.
        if self.intake_workers > 1 and not (self.database_url or "").startswith("postgresql"):
            raise ValueError("AVISO_INTAKE_WORKERS above 1 needs PostgreSQL (AVISO_DATABASE_URL)")
        return self

    @model_validator(mode="after")
    def _signing_needs_secrets(self) -> Self:
        # Requiring signatures with nothing to check them against would refuse every request.
        if self.intake_require_signature and not self.intake_signing_secrets:
            raise ValueError("AVISO_INTAKE_REQUIRE_SIGNATURE needs AVISO_INTAKE_SIGNING_SECRETS")
        if any(not secret.get_secret_value() for secret in self.intake_signing_secrets):
            raise ValueError("AVISO_INTAKE_SIGNING_SECRETS must not contain an empty secret")
        return self
