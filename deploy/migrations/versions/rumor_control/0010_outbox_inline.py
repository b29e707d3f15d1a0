"""rumor_control: the outbox's rows kept out of TOAST, half of each page free.

Revision ID: rumor_control_0010
Revises: rumor_control_0009
Create Date: 2026-11-29

Measured in docs/performance.md, "The outbox's cost per row (thirteenth round)".
PostgreSQL only (SQLite has no TOAST nor fillfactor): `toast_tuple_target` 8160 keeps a
row up to a page long in the table (a row is inserted once and deleted once Kafka has
it; in TOAST a 3 kB row wrote two chunks and their index entries more, and deleted them
again), and fillfactor 50 leaves room on each page for every row's lease renewal to be
HOT (at fillfactor 80 two such rows fill a page and a renewal copied the whole row).
"""

from collections.abc import Sequence

from alembic import op

from services.common.messaging import keep_outbox_rows_inline, let_outbox_rows_toast

revision: str = "rumor_control_0010"
down_revision: str | None = "rumor_control_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    keep_outbox_rows_inline(op)


def downgrade() -> None:
    let_outbox_rows_toast(op)
