"""intake: notices, their versions, idempotency keys, signature replays and the audit chain.

Revision ID: intake_0002
Revises: intake_0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "intake_0002"
down_revision: str | None = "intake_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)
# Frozen copy of services.intake.tables.AUDIT_GENESIS_HASH: a migration must not
# change meaning when application code moves on.
_GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("source_key", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_via", sa.String(16), nullable=False),
        sa.Column("operation_type", sa.String(32), nullable=False),
        sa.Column("public_safety_nexus", sa.Boolean, nullable=False),
        sa.Column("window_start", _Time, nullable=False),
        sa.Column("window_end", _Time, nullable=False),
        sa.Column("area", sa.String(200), nullable=False),
        sa.Column("area_code", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("sent_at", _Time, nullable=False),
        sa.Column("received_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.Column("closed_at", _Time, nullable=True),
        sa.Column("cancel_reason", sa.String(32), nullable=True),
        sa.Column("restricted_purged_at", _Time, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
        sa.UniqueConstraint("source_key", "reference", name="uq_notices_source_reference"),
    )
    op.create_index("ix_notices_received_at_id", "notices", ["received_at", "id"])
    op.create_index("ix_notices_state_window_end", "notices", ["state", "window_end"])

    op.create_table(
        "notice_versions",
        sa.Column("notice_id", sa.String(36), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("msg_type", sa.String(8), nullable=False),
        sa.Column("version_refs", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_via", sa.String(16), nullable=False),
        sa.Column("operation_type", sa.String(32), nullable=False),
        sa.Column("public_safety_nexus", sa.Boolean, nullable=False),
        sa.Column("window_start", _Time, nullable=False),
        sa.Column("window_end", _Time, nullable=False),
        sa.Column("area", sa.String(200), nullable=False),
        sa.Column("area_code", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("sent_at", _Time, nullable=False),
        sa.Column("received_at", _Time, nullable=False),
        sa.Column("cancel_reason", sa.String(32), nullable=True),
        sa.Column("policy_annotations", sa.JSON, nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=True),
        sa.Column("restricted_sealed", sa.Text, nullable=True),
        sa.Column("restricted_changed", sa.Boolean, nullable=False),
        sa.Column("actor_token_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("notice_id", "version", name="pk_notice_versions"),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["notices.id"], name="fk_notice_versions_notice_id_notices"
        ),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("source_key", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("created_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("source_key", "idempotency_key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])

    op.create_table(
        "signature_replays",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("signed_at", _Time, nullable=False),
        sa.Column("seen_at", _Time, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_signature_replays"),
    )
    op.create_index("ix_signature_replays_seen_at", "signature_replays", ["seen_at"])

    op.create_table(
        "audit_log",
        sa.Column("seq", _BigId, nullable=False, autoincrement=False),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("occurred_at", _Time, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("actor_token_id", sa.String(36), nullable=True),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    )
    op.create_index("ix_audit_log_notice_id", "audit_log", ["notice_id"])

    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("seq", _BigId, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_head"),
    )
    # The single row writers lock; seq 0 and the genesis hash mean "no entry yet".
    op.bulk_insert(head, [{"id": 1, "seq": 0, "entry_hash": _GENESIS}])


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    op.drop_index("ix_audit_log_notice_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_signature_replays_seen_at", table_name="signature_replays")
    op.drop_table("signature_replays")
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("notice_versions")
    op.drop_index("ix_notices_state_window_end", table_name="notices")
    op.drop_index("ix_notices_received_at_id", table_name="notices")
    op.drop_table("notices")
