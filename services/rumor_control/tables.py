"""Tables owned by the rumor_control service (its own PostgreSQL schema, or var/rumor_control.db).

The claim text, the place as heard and the reporter stay in these tables and nowhere else:
events carry ids, gazetteer areas and reason codes only. Draft text lives here until a vetter
approves it; only then does it leave on `bulletin.published`, deliveries and the feeds.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.common.delivery import delivery_records_table

__all__ = [
    "audit_log",
    "bulletin_versions",
    "bulletins",
    "delivery_records",
    "metadata",
    "notices",
    "receipts",
    "rumor_reports",
    "rumors",
    "sms_subscribers",
    "standby_requests",
]

metadata = sa.MetaData()

_Id = sa.String(36)
_When = sa.DateTime(timezone=True)
# BIGINT on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Local projection of notice.* events: releasable fields and the union of fingerprints over
# every version (a restricted term of version 1 stays restricted after an update).
notices = sa.Table(
    "notices",
    metadata,
    sa.Column("notice_id", _Id, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("area", sa.String(200), nullable=True),
    sa.Column("area_code", sa.String(64), nullable=True),
    sa.Column("window_start", _When, nullable=True),
    sa.Column("window_end", _When, nullable=True),
    sa.Column("cancelled_at", _When, nullable=True),
    sa.Column("fingerprints", sa.JSON, nullable=False),
    sa.Column("fingerprint_key_ids", sa.JSON, nullable=False),
    sa.Column("updated_at", _When, nullable=False),
)

# An acknowledgement that arrived before its notice: the standby is drafted when it does.
standby_requests = sa.Table(
    "standby_requests",
    metadata,
    sa.Column("notice_id", _Id, primary_key=True),
    sa.Column("alert_id", _Id, nullable=False),
    sa.Column("acknowledged_by", _Id, nullable=False),
    sa.Column("requested_at", _When, nullable=False),
)

rumors = sa.Table(
    "rumors",
    metadata,
    sa.Column("rumor_id", _Id, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("area_code", sa.String(64), nullable=True),
    sa.Column("area", sa.String(200), nullable=True),
    # Normalised place as heard, used to cluster reports no gazetteer name matched.
    sa.Column("place_key", sa.String(200), nullable=True),
    sa.Column("report_count", sa.Integer, nullable=False),
    sa.Column("channels", sa.JSON, nullable=False),
    sa.Column("first_reported_at", _When, nullable=False),
    sa.Column("last_reported_at", _When, nullable=False),
    sa.Column("first_observed_at", _When, nullable=False),
    sa.Column("last_observed_at", _When, nullable=False),
    sa.Column("assessment", sa.String(32), nullable=True),
    sa.Column("assessment_revision", sa.Integer, nullable=False),
    sa.Column("as_of", _When, nullable=True),
    sa.Column("expires_at", _When, nullable=True),
    sa.Column("assessed_by", _Id, nullable=True),
    sa.Column("assessed_by_name", sa.String(200), nullable=True),
    sa.Column("linked_notice_ids", sa.JSON, nullable=False),
)
sa.Index("ix_rumors_cluster", rumors.c.status, rumors.c.area_code, rumors.c.last_observed_at)

rumor_reports = sa.Table(
    "rumor_reports",
    metadata,
    sa.Column("report_id", _Id, primary_key=True),
    sa.Column("rumor_id", _Id, sa.ForeignKey("rumors.rumor_id"), nullable=False),
    # As heard: may name people or places; never leaves this table.
    sa.Column("claim", sa.Text, nullable=False),
    sa.Column("place_as_heard", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("organisation", sa.String(200), nullable=True),
    sa.Column("language", sa.String(8), nullable=True),
    sa.Column("reporter_id", _Id, nullable=False),
    sa.Column("reporter_name", sa.String(200), nullable=False),
    sa.Column("observed_at", _When, nullable=True),
    sa.Column("reported_at", _When, nullable=False),
)
sa.Index("ix_rumor_reports_rumor", rumor_reports.c.rumor_id)

bulletins = sa.Table(
    "bulletins",
    metadata,
    sa.Column("bulletin_id", _Id, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # drafted | rejected | published | superseded | retracted | withdrawn
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("current_version", sa.Integer, nullable=False),
    sa.Column("template_id", sa.String(64), nullable=False),
    sa.Column("rumor_id", _Id, nullable=True),
    sa.Column("notice_ids", sa.JSON, nullable=False),
    sa.Column("area_code", sa.String(64), nullable=True),
    # One standby per notice, however often the alert is acknowledged or redelivered.
    sa.Column("standby_for_notice", _Id, nullable=True, unique=True),
    sa.Column("first_reported_at", _When, nullable=True),
    sa.Column("created_at", _When, nullable=False),
    sa.Column("updated_at", _When, nullable=False),
    # The bulletin of the same rumor that replaced this one (state superseded).
    sa.Column("superseded_by", _Id, nullable=True),
    # Why vetters should look at it again (reason codes), until a vetter decides.
    sa.Column("flags", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
)
# A rumor's bulletins: the live one a new approval supersedes, the drafts it withdraws.
sa.Index("ix_bulletins_rumor", bulletins.c.rumor_id, bulletins.c.state)

bulletin_versions = sa.Table(
    "bulletin_versions",
    metadata,
    sa.Column("bulletin_id", _Id, sa.ForeignKey("bulletins.bulletin_id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("msg_type", sa.String(8), nullable=False),
    sa.Column("refs", sa.JSON, nullable=False),
    # drafted | rejected | published | withdrawn
    sa.Column("state", sa.String(16), nullable=False),
    # Each edit of a draft is a revision; sign-offs apply to one revision only.
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("texts", sa.JSON, nullable=False),
    sa.Column("findings", sa.JSON, nullable=False),
    sa.Column("blocked_reasons", sa.JSON, nullable=False),
    sa.Column("channels", sa.JSON, nullable=False),
    sa.Column("signoffs", sa.JSON, nullable=False),
    sa.Column("author_id", _Id, nullable=True),
    sa.Column("author_name", sa.String(200), nullable=True),
    sa.Column("drafted_at", _When, nullable=False),
    sa.Column("approved_by", _Id, nullable=True),
    sa.Column("approved_at", _When, nullable=True),
    sa.Column("published_at", _When, nullable=True),
    sa.Column("expires_at", _When, nullable=True),
    sa.Column("rejected_by", _Id, nullable=True),
    sa.Column("rejected_at", _When, nullable=True),
    sa.Column("reason_codes", sa.JSON, nullable=False),
    sa.Column("vetter_comment", sa.Text, nullable=True),
)

# The timeline of every rumor and bulletin, and the audit log: who did what, when. Details
# are ids and reason codes, never bulletin text or claims.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("at", _When, nullable=False),
    sa.Column("aggregate", sa.String(16), nullable=False),
    sa.Column("aggregate_id", _Id, nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor_id", _Id, nullable=True),
    sa.Column("actor_name", sa.String(200), nullable=True),
    sa.Column("actor_role", sa.String(32), nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
)
sa.Index("ix_audit_log_aggregate", audit_log.c.aggregate, audit_log.c.aggregate_id, audit_log.c.id)

# The delivery engine's records (services/common/delivery): one per bulletin version,
# recipient and channel; they are the durable queue and the history of every delivery.
delivery_records = delivery_records_table(metadata)
# A fifth of each page kept free (rumor_control_0008): an update soon after the insert (the
# engine's outcome, a renewed lease) lands on the row's own page, where its WAL record
# holds the changed bytes and not the whole row (`context`, ~1.2 kB, precedes every
# column an update changes), and an update of no indexed column can be HOT.
delivery_records.dialect_kwargs["postgresql_with"] = {"fillfactor": 80}

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("bulletin_id", _Id, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("recipient_id", _Id, primary_key=True),
    sa.Column("first_seen_at", _When, nullable=False),
    sa.Column("last_seen_at", _When, nullable=False),
    sa.Column("seen_count", sa.Integer, nullable=False),
)

# Community members who get bulletins by SMS. The number is restricted: sealed at rest and
# found by its keyed hash (community.numbers); it is never in a log, topic or timeline.
sms_subscribers = sa.Table(
    "sms_subscribers",
    metadata,
    sa.Column("subscriber_id", _Id, primary_key=True),
    sa.Column("number_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("number_sealed", sa.Text, nullable=False),
    sa.Column("language", sa.String(2), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | active | stopped
    sa.Column("created_at", _When, nullable=False),
    sa.Column("updated_at", _When, nullable=False),
    sa.Column("confirmed_at", _When, nullable=True),
    sa.Index("ix_sms_subscribers_state", "state"),
)
