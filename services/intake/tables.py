"""Tables owned by the intake service (its own PostgreSQL schema, or var/intake.db).

No column holds restricted detail in plaintext: the source, agent, names, addresses,
vehicles, exact locations and free text of a version live only inside
`notice_versions.restricted_sealed` (AES-GCM, see crypto.py). The field office id is
needed for ownership checks and reference uniqueness, so it is kept as a keyed hash
(`source_key`), never as text. Migrations: deploy/migrations/versions/intake/.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import MetaData

__all__ = [
    "AUDIT_GENESIS_HASH",
    "audit_chain_head",
    "audit_log",
    "audit_pending",
    "directory_people",
    "idempotency_keys",
    "metadata",
    "notice_versions",
    "notices",
    "signature_replays",
]

# Named constraints so the migration and the metadata agree on every database.
metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# The hash the first audit entry points back to.
AUDIT_GENESIS_HASH = "0" * 64

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)

# One row per notice: its current releasable state, for listing and filtering.
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
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
    # The field office's reference is its idempotency key: unique per source.
    sa.UniqueConstraint("source_key", "reference", name="uq_notices_source_reference"),
)
sa.Index("ix_notices_received_at_id", notices.c.received_at, notices.c.id)
sa.Index("ix_notices_state_window_end", notices.c.state, notices.c.window_end)

# Every version as recorded (CAP-style): the Alert, each Update and the Cancel.
notice_versions = sa.Table(
    "notice_versions",
    metadata,
    sa.Column("notice_id", sa.String(36), sa.ForeignKey("notices.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
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
    # Frozen when recorded, so a later policy edit never rewrites what was shown.
    sa.Column("policy_annotations", sa.JSON, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    # Keyed digest of the submitted content: idempotent retries compare against it.
    sa.Column("content_digest", sa.String(64), nullable=True),
    # AES-GCM sealed restricted detail (with its key id); NULL on a Cancel or once purged.
    sa.Column("restricted_sealed", sa.Text, nullable=True),
    sa.Column("restricted_changed", sa.Boolean, nullable=False),
    sa.Column("actor_token_id", sa.String(36), nullable=False),
)

# Idempotency-Key headers of a source, remembered for a while.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("source_key", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("notice_id", sa.String(36), nullable=False),
    sa.Column("content_digest", sa.String(64), nullable=False),
    sa.Column("created_at", _Time, nullable=False),
)
sa.Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)

# Signed requests already seen (what was signed, not how), to refuse replays.
signature_replays = sa.Table(
    "signature_replays",
    metadata,
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("signed_at", _Time, nullable=False),
    sa.Column("seen_at", _Time, nullable=False),
)
sa.Index("ix_signature_replays_seen_at", signature_replays.c.seen_at)


# Entries as requests write them, waiting for the sealer (audit.py) to chain them into
# audit_log, in `id` order, batch by batch. No lock: appending is one INSERT.
def _audit_entry_columns() -> list[sa.Column[Any]]:
    """What an audit entry says, the same pending and sealed (the sealer copies it over)."""
    return [
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("occurred_at", _Time, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("notice_id", sa.String(36), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("actor_token_id", sa.String(36), nullable=True),
        sa.Column("actor_role", sa.String(32), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    ]


audit_pending = sa.Table(
    "audit_pending",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    *_audit_entry_columns(),
)

# Append-only, hash-chained: each entry holds the keyed hash of the one before it.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", _BigId, primary_key=True, autoincrement=False),
    *_audit_entry_columns(),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    # A fork (two entries claiming the same predecessor) cannot be written.
    sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
)
# No index on notice_id (intake_0005): the verifier reads in seq order and nothing else
# reads the log, so an index would be one more write per entry for no reader.

# One row: the latest sealed entry. Only the sealer locks it (one sealing at a time);
# `unkeyed_seq` is the last entry sealed before the chain was keyed (plain SHA-256).
audit_chain_head = sa.Table(
    "audit_chain_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", _BigId, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    sa.Column("unkeyed_seq", _BigId, nullable=False, server_default="0"),
)

# The people of the directory in force, as router last announced it (ids only: names and
# channels stay in router). Only the newest announced version is kept; `published_at` is
# when router made it current, which orders announcements even when a rebuilt router
# starts its versions again from 1.
directory_people = sa.Table(
    "directory_people",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("person_id", sa.String(36), nullable=False),
    sa.Column("published_at", _Time, nullable=False),
    sa.PrimaryKeyConstraint("version", "person_id", name="pk_directory_people"),
)
sa.Index("ix_directory_people_person_id", directory_people.c.person_id)
