"""rumor_control: bulletin deliveries move onto the delivery engine's records.

Revision ID: rumor_control_0003
Revises: rumor_control_0002
Create Date: 2026-12-02

`delivery_records` (the engine's table, frozen at its version 1) replaces `deliveries`:
it is the durable queue of bulletin deliveries and their history. Outcomes recorded before
this revision are carried over as finished records (sent -> delivered, failed, skipped);
their failure reason was free text then, so it is not carried (NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.delivery import create_delivery_records_table

revision: str = "rumor_control_0003"
down_revision: str | None = "rumor_control_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(36)
WHEN = sa.DateTime(timezone=True)

# The tables as this revision finds and leaves them (not imported from the models).
_old = sa.table(
    "deliveries",
    sa.column("delivery_id", ID),
    sa.column("bulletin_id", ID),
    sa.column("version", sa.Integer),
    sa.column("recipient_id", ID),
    sa.column("channel", sa.String(16)),
    sa.column("language", sa.String(8)),
    sa.column("purpose", sa.String(16)),
    sa.column("outcome", sa.String(16)),
    sa.column("error", sa.String(200)),
    sa.column("attempted_at", WHEN),
)
_new = sa.table(
    "delivery_records",
    *(
        sa.column(name, type_)
        for name, type_ in (
            ("delivery_id", ID),
            ("aggregate_id", ID),
            ("aggregate_version", sa.Integer),
            ("recipient_id", ID),
            ("channel", sa.String(16)),
            ("purpose", sa.String(32)),
            ("language", sa.String(8)),
            ("context", sa.JSON),
            ("state", sa.String(16)),
            ("attempts", sa.Integer),
            ("next_attempt_at", WHEN),
            ("give_up_at", WHEN),
            ("created_at", WHEN),
            ("updated_at", WHEN),
            ("delivered_at", WHEN),
        )
    ),
)


def upgrade() -> None:
    create_delivery_records_table(op)
    sent = _old.c.outcome == "sent"
    op.execute(
        sa.insert(_new).from_select(
            [c.name for c in _new.c],
            sa.select(
                _old.c.delivery_id,
                _old.c.bulletin_id,
                _old.c.version,
                _old.c.recipient_id,
                _old.c.channel,
                _old.c.purpose,
                _old.c.language,
                sa.literal({}, sa.JSON),
                sa.case((sent, "delivered"), (_old.c.outcome == "failed", "failed"),
                        else_="skipped"),
                sa.case((_old.c.outcome == "skipped", 0), else_=1),
                _old.c.attempted_at,
                _old.c.attempted_at,
                _old.c.attempted_at,
                _old.c.attempted_at,
                sa.case((sent, _old.c.attempted_at), else_=sa.null()),
            ),
        )
    )  # fmt: skip
    op.drop_index("ix_deliveries_bulletin", table_name="deliveries")
    op.drop_table("deliveries")


def downgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", ID, primary_key=True),
        sa.Column("bulletin_id", ID, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("recipient_id", ID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("attempted_at", WHEN, nullable=False),
    )
    op.create_index("ix_deliveries_bulletin", "deliveries", ["bulletin_id", "version"])
    # Finished records go back as outcomes; pending ones are lost with the engine.
    finished = _new.c.state.in_(["delivered", "failed", "skipped", "cancelled"])
    op.execute(
        sa.insert(_old).from_select(
            ["delivery_id", "bulletin_id", "version", "recipient_id", "channel", "language",
             "purpose", "outcome", "attempted_at"],
            sa.select(
                _new.c.delivery_id, _new.c.aggregate_id, _new.c.aggregate_version,
                _new.c.recipient_id, _new.c.channel, _new.c.language, _new.c.purpose,
                sa.case((_new.c.state == "delivered", "sent"), (_new.c.state == "failed", "failed"),
                        else_="skipped"),
                _new.c.updated_at,
            ).where(finished),
        )
    )  # fmt: skip
    op.drop_index("ix_delivery_records_aggregate", table_name="delivery_records")
    op.drop_index("ix_delivery_records_due", table_name="delivery_records")
    op.drop_table("delivery_records")
