"""rumor_control: a notice's first version projected in one statement, its lock inside.

Revision ID: rumor_control_0009
Revises: rumor_control_0008
Create Date: 2026-11-29

Measured in docs/performance.md, "rumor_control's notice projection in one round trip
(eleventh round)".

PostgreSQL only (SQLite keeps its statements): `project_first_version(...)` takes the
notice's advisory lock, then takes the standby request an acknowledgement left for it and
inserts the notice's first version. It is a function, not one SQL statement, because the
lock must come BEFORE the reads: a PL/pgSQL statement takes its snapshot when it starts,
after the lock was granted, so it sees a request that a concurrent acknowledgement
committed while this waited. One statement's snapshot is taken before any lock it
waits for inside it, and the request would be missed (no standby drafted, ever).

Given a consumer's inbox claim (`p_consumer` not null: a lone message carrying it,
autocommitted), it writes nothing and answers (false, false) unless the message is not
recorded yet, the notice is new and no request waits for it; then it writes the claim
and the notice together. Both run under the lock, which every writer of a notice row
holds, so the insert cannot miss; if it ever did, it raises and nothing is written.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rumor_control_0009"
down_revision: str | None = "rumor_control_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNATURE = (
    "project_first_version(varchar, integer, varchar, varchar, varchar, timestamptz, "
    "timestamptz, json, json, timestamptz, varchar, varchar, varchar, timestamptz)"
)

_FUNCTION = """
CREATE OR REPLACE FUNCTION project_first_version(
    p_notice_id varchar, p_version integer, p_status varchar, p_area varchar,
    p_area_code varchar, p_window_start timestamptz, p_window_end timestamptz,
    p_fingerprints json, p_fingerprint_key_ids json, p_updated_at timestamptz,
    p_consumer varchar, p_message_id varchar, p_topic varchar, p_processed_at timestamptz,
    OUT taken boolean, OUT inserted boolean
) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    taken := false;
    inserted := false;
    IF p_consumer IS NOT NULL AND EXISTS (
        SELECT 1 FROM inbox_messages WHERE consumer = p_consumer AND message_id = p_message_id
    ) THEN
        RETURN;  -- a redelivery: the usual path reports the duplicate
    END IF;
    -- The key SqlNotices.lock takes: serialised with an acknowledgement of the notice.
    PERFORM pg_advisory_xact_lock(hashtext('aviso-rumor-notice-' || p_notice_id));
    IF p_consumer IS NULL THEN
        DELETE FROM standby_requests WHERE notice_id = p_notice_id;
        taken := FOUND;
    ELSE
        IF EXISTS (SELECT 1 FROM standby_requests WHERE notice_id = p_notice_id)
            OR EXISTS (SELECT 1 FROM notices WHERE notice_id = p_notice_id) THEN
            RETURN;  -- a standby to draft, or a version to merge: the usual path
        END IF;
        INSERT INTO inbox_messages (consumer, message_id, topic, processed_at)
        VALUES (p_consumer, p_message_id, p_topic, p_processed_at)
        ON CONFLICT (consumer, message_id) DO NOTHING;
        IF NOT FOUND THEN
            RETURN;  -- a concurrent copy recorded it first
        END IF;
    END IF;
    INSERT INTO notices (
        notice_id, version, status, area, area_code, window_start, window_end,
        fingerprints, fingerprint_key_ids, updated_at
    ) VALUES (
        p_notice_id, p_version, p_status, p_area, p_area_code, p_window_start,
        p_window_end, p_fingerprints, p_fingerprint_key_ids, p_updated_at
    ) ON CONFLICT (notice_id) DO NOTHING;
    inserted := FOUND;
    IF p_consumer IS NOT NULL AND NOT inserted THEN
        -- Never a claim without its effect (a redelivery would be skipped).
        RAISE EXCEPTION 'notice row appeared under its lock' USING ERRCODE = '40001';
    END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_SIGNATURE}")
