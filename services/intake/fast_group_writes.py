"""A group of submissions' writes as one statement (grouped_writes.py `Together`).

The new notice's statement (fast_writes.py) for one submission, rewritten for a group:
every parameter an array of the members' values, unnested into one row a member, so
PostgreSQL parses, binds, plans and starts its executor once a group instead of once a
member. What a member gets is the lone statement's answer row, in the group's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.common.messaging import outbox_messages
from services.common.outbox import lease_columns, lease_values, notify_relays
from services.intake.grouped_writes import Together
from services.intake.tables import audit_pending, notice_versions, notices

__all__ = ["PREFIXES", "TABLES", "new_notices", "together"]

# Each row's columns by table, and the prefix of their parameters' names.
PREFIXES = ("n", "v", "a", "o")
TABLES = (notices, notice_versions, audit_pending, outbox_messages)


def new_notices(
    columns: tuple[tuple[str, ...], ...], parameter: Callable[[str, str], str]
) -> sa.Executable:
    """The new notice's statement (fast_writes.py) for a group of submissions: each
    parameter (`parameter`: a row's column's) an array of their values, unnested into one
    row a submission; one answer row each, in the group's order.

    Each row's reference is looked up (`existing`) and its notice inserted unless taken;
    its version, audit entry and event go only with its notice's row. Two rows of one
    reference: the second's insert meets the first's row (ON CONFLICT DO NOTHING) and
    answers neither written nor existing, as one taken by a concurrent commit does, so its
    caller looks it up in a new snapshot and answers as the second of two in a row.
    """

    rows = _group_rows(columns, parameter)
    each = rows.c
    notice_names, version_names, audit_names, outbox_names = columns

    def picked(prefix: str, names: tuple[str, ...]) -> list[sa.ColumnElement[Any]]:
        return [each[parameter(prefix, name)] for name in names]

    existing = (
        sa.select(each.ord, notices.c.id)
        .join_from(
            rows,
            notices,
            sa.and_(notices.c.source_key == each.source_key, notices.c.reference == each.reference),
        )
        .cte("existing")
    )
    # In the group's order, which is (source, reference)'s: the unique index's waits too.
    notice = (
        postgresql.insert(notices)
        .from_select(
            list(notice_names),
            sa.select(*picked("n", notice_names))
            .where(~sa.exists().where(existing.c.ord == each.ord))
            .order_by(each.ord),
        )
        .on_conflict_do_nothing(constraint="uq_notices_source_reference")
        .returning(notices.c.id)
        .cte("w_n")
    )
    notice_id = each[parameter("n", "id")]
    version, audit = (
        sa.insert(table).from_select(
            list(names),
            sa.select(*picked(prefix, names)).join_from(rows, notice, notice.c.id == notice_id),
        )
        for prefix, table, names in (
            ("v", notice_versions, version_names),
            ("a", audit_pending, audit_names),
        )
    )
    outbox = sa.insert(outbox_messages).from_select(
        [*outbox_names, "claimed_by", "claimed_until"],
        sa.select(*picked("o", outbox_names), *lease_columns(each[parameter("o", "key")]))
        .join_from(rows, notice, notice.c.id == notice_id)
        .order_by(each.ord),
    )
    outboxed = outbox.returning(
        outbox_messages.c.id, outbox_messages.c.message_id, outbox_messages.c.claimed_by
    ).cte("w_o")
    answers = _group_answers(rows, existing, notice, outboxed, parameter)
    return answers.add_cte(notice, version.cte("w_v"), audit.cte("w_a"), outboxed)


def _group_rows(
    columns: tuple[tuple[str, ...], ...], parameter: Callable[[str, str], str]
) -> sa.CTE:
    """A group's values, one row a member (`ord`: its place), a column a parameter."""
    types: dict[str, Any] = {
        "source_key": notices.c.source_key.type,
        "reference": notices.c.reference.type,
    }
    for prefix, table, names in zip(PREFIXES, TABLES, columns, strict=True):
        for name in names:
            types.setdefault(parameter(prefix, name), table.c[name].type)
    # Cast as the lone statement casts (`$n::VARCHAR`): a length in the array's cast would
    # cut a value too long where the column's own check refuses it.
    unnested = sa.func.unnest(
        *(
            sa.bindparam(name, type_=postgresql.ARRAY(_unbounded(type_)))
            for name, type_ in types.items()
        )
    ).table_valued(*types, with_ordinality="ord")
    return sa.select(unnested.render_derived(name="each")).cte("rows")


def _group_answers(
    rows: sa.CTE,
    existing: sa.CTE,
    notice: sa.CTE,
    outboxed: sa.CTE,
    parameter: Callable[[str, str], str],
) -> sa.Select[Any]:
    """A member's answer as the lone statement's, one row each in the group's order."""
    each = rows.c
    notice_id = each[parameter("n", "id")]
    # One NOTIFY for the group, marked handed when every event was leased here.
    notify = notify_relays(handed=sa.func.bool_and(outboxed.c.claimed_by.is_not(None)))
    leased = sa.and_(
        outboxed.c.message_id == each[parameter("o", "message_id")],
        outboxed.c.claimed_by.is_not(None),
    )
    return (
        sa.select(
            existing.c.id.label("existing_id"),
            sa.case((notice.c.id.is_not(None), 1), else_=0).label("written"),
            sa.select(notify)
            .select_from(outboxed)
            .having(sa.func.count() > 0)
            .scalar_subquery()
            .label("notified"),
            outboxed.c.id.label("leased_id"),
        )
        .select_from(
            rows.outerjoin(existing, existing.c.ord == each.ord)
            .outerjoin(notice, notice.c.id == notice_id)
            .outerjoin(outboxed, leased)
        )
        .order_by(each.ord)
    )


def _unbounded(type_: Any) -> Any:
    return sa.String() if type(type_) in (sa.String, sa.Text, sa.Unicode) else type_


# The parameters a group's statement binds once: the process's lease, the same for all.
_SHARED_NAMES = frozenset(lease_values(None))
# What each of the group statement's parameters takes: its literal (processed), a lone
# parameter's value shared by all (the lease), or an array of a lone parameter's values.
_LITERAL, _SHARED, _ARRAY = range(3)


def together(lone: Any, group: Any) -> Together:
    """The group's statement, compiled (`group`, of `new_notices`), with its arguments from
    the members' arguments of the lone statement (`lone`, compiled)."""
    required = (name for name in group.names if name not in group.defaults)
    literals = group.arguments(dict.fromkeys(required))
    plan = tuple(
        (_LITERAL, literals[n])
        if name in group.defaults
        else (_SHARED if name in _SHARED_NAMES else _ARRAY, lone.names.index(name))
        for n, name in enumerate(group.names)
    )
    return Together(group.sql, partial(_group_arguments, plan))


def _group_arguments(
    plan: tuple[tuple[int, Any], ...], members: Sequence[Sequence[Any]]
) -> list[Any]:
    """The group statement's arguments from its members' lone ones, as processed for the
    lone statement: each member's value of a parameter an item of that parameter's array
    (an array's own processor would read a JSON list as a dimension), the lease once."""
    first = members[0]
    arguments: list[Any] = []
    for kind, what in plan:
        if kind == _ARRAY:
            arguments.append([each[what] for each in members])
        elif kind == _SHARED:
            if any(each[what] != first[what] for each in members):
                raise ValueError("a group's members must share their lease")
            arguments.append(first[what])
        else:
            arguments.append(what)
    return arguments
