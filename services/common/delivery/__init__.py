"""Durable, concurrent delivery of messages to people: one engine, used by every service.

A service accepts a delivery inside its own transaction; the engine's dispatcher sends
it later, outside any transaction, retries transient failures with backoff and jitter
until the purpose's give-up time, and reports every outcome back to the service inside
the transaction that records it. Addresses stay in the service: the engine asks the
service's plan for them when it sends, and stores only a keyed hash.

Modules: `records` (table and record types), `store` (claims, leases, settlement;
`claim_query` keeps a claim statement cheap and capped per destination, `settle_query`
holds the settling statements, `insert_query` the accepting one), `engine` (the
dispatcher: one transaction a round settles, claims and reads the next due time) and
`config` (its limits), `handoff` (orders claimed at accept, sent once the accepting
transaction commits), `lookout` (when a round must claim at all), `admission` (a
claimed record as a send or an outcome, a send's answer as an outcome), `claims`
(what an engine holds, its heartbeat, lost claims), `outcomes` (recording and hooks, in
batches), `plan` (the service's side), `registry` (channels, message types, senders),
`senders` (webhook, e-mail), `sms` (Kannel), `sms_reports` (its delivery reports and
replies) and `handset` (a report on the record; a handset failure as the engine's
failure), `policy` (backoff, circuit breaker, the adaptive per-destination limit),
`headers` (safe header text), `errors` (reason classes) and `reasons` (a reason class as
the contract's `DeliveryFailureReason`, for every service).

How a service plugs in
----------------------

1. Table. In `services/<svc>/tables.py`::

       from services.common.delivery import delivery_records_table
       delivery_records = delivery_records_table(metadata)

   and in a new alembic revision of the service::

       from services.common.delivery import create_delivery_records_table
       def upgrade() -> None:
           create_delivery_records_table(op)          # version 1, frozen
           add_delivery_segments_column(op)           # version 2
           add_delivery_report_columns(op)            # version 3
           add_in_flight_indexes(op)                  # version 4 (TABLE_VERSION)

2. Plan. A class in the service (e.g. `services/router/alerting/delivery_plan.py`)::

       class AlertDeliveryPlan(BaseDeliveryPlan):
           channels = ("webhook", "email")

           def give_up_after(self, order: DeliveryOrder) -> timedelta:
               return timedelta(minutes=15)            # per purpose

           async def resolve(self, session, record) -> Outbound | Skip:
               alert = await repo.get_alert(session, ...record.aggregate_id)
               if alert is acknowledged: return Skip("acknowledged")
               address = ...                           # the service's own directory
               if address is None:
                   raise DeliveryError("no address", reason="no_address")
               match record.channel:
                   case "webhook": return WebhookOutbound(url=address, payload={...})
                   case "email": return EmailOutbound(to=address, subject=..., text=...)
                   case _: assert_never(record.channel)

           async def on_delivered(self, tx, record, result): ...   # timeline, alert.delivered
           async def on_attempt_failed(self, tx, record, failure): ...  # timeline
           async def on_failed(self, tx, record, failure): ...  # alert.delivery_failed, escalate
           async def on_skipped(self, tx, record, skip): ...

   Hooks run in the transaction that records the outcome (`tx.session`; log and
   metric lines go in `tx.after_commit`). `failure.reason` is a `ReasonClass`, safe
   for timelines and events; it never holds an address; `contract_reason(reason)` is
   its name in the contract's `DeliveryFailureReason`. Outcomes are recorded in
   batches: the engine calls `on_outcomes(tx, [Settled(record, result), ...])` once per
   transaction, which by default calls the hooks above one by one; override it to
   write a batch in fewer statements (rumor_control writes its timeline rows at once).

3. Composition root (`services/<svc>/app.py`)::

       senders = SenderRegistry(
           webhook=WebhookSender.from_settings(settings),
           email=EmailSender.from_settings(settings),
       )
       engine = DeliveryEngine.create(
           sessions=runtime.sessions, table=delivery_records, senders=senders,
           plan=AlertDeliveryPlan(...), service="router", settings=settings,
       )                                      # MissingSender here if a channel has none
       runtime.add_worker("delivery", engine.run)
       # on shutdown, after the workers stopped: await senders.close()

4. Use cases, in their own transaction (a Kafka handler's unit of work, or an HTTP
   use case)::

       await deps.delivery.accept(uow.session, DeliveryOrder(
           delivery_id=..., aggregate_id=alert.id, aggregate_version=version,
           recipient_id=person.id, channel="email", purpose="alert",
           language="en", context={"headline": ..., "body": ...},   # releasable only
           correlation_id=current_correlation_id.get()))
       await deps.delivery.cancel(uow.session, aggregate_id=alert.id)  # e.g. acknowledged

   `accept` is idempotent on the delivery id and wakes the dispatcher when the
   transaction commits. While the engine runs with free slots, accepted orders are
   handed off: claimed and resolved by the plan in the caller's transaction (as it
   stands at that point: accept after writing what `resolve` reads) and sent as soon as
   it commits (`handoff`). Nothing it does can fail because a receiver is down. Several
   orders at once: `await deps.delivery.accept_many(uow.session, orders)` (one
   `INSERT ... ON CONFLICT DO NOTHING` per 1,000; returns how many were new). A caller
   whose own statement can carry the INSERT (PostgreSQL, a data-modifying CTE) uses
   `prepare_accept` and `accepting.accept_insert_sql`, then `finish` (`accepting`).

Claims are leases (`delivery_lease_s`; the heartbeat looks every `delivery_heartbeat_s`
and renews those with half their lease or less left): long, so that a process slowed
down by load never loses a send to another process; a record is sent only while its
claim is confirmed ours (`claims`). An SMS sender's receipt
(segments) is kept on `Delivered` and on the record.

Settings: `delivery_*` and `smtp_pool_size` (README's settings table).
"""

from __future__ import annotations

from services.common.delivery.engine import DeliveryEngine, EngineConfig
from services.common.delivery.errors import (
    PERMANENT_REASONS,
    REASON_CLASSES,
    DeliveryError,
    ReasonClass,
)
from services.common.delivery.headers import safe_body, safe_header
from services.common.delivery.plan import BaseDeliveryPlan, DeliveryPlan, Resolution, Settled
from services.common.delivery.reasons import contract_reason, stored_reason
from services.common.delivery.records import (
    TABLE_VERSION,
    Delivered,
    DeliveryOrder,
    DeliveryRecord,
    DeliveryState,
    Failure,
    add_delivery_report_columns,
    add_delivery_segments_column,
    add_in_flight_indexes,
    create_delivery_records_table,
    delivery_records_table,
    drop_delivery_report_columns,
    drop_delivery_segments_column,
    drop_in_flight_indexes,
)
from services.common.delivery.registry import (
    EmailOutbound,
    MissingSender,
    Outbound,
    SenderRegistry,
    Skip,
    SmsOutbound,
    SmsReceipt,
    WebhookOutbound,
)
from services.common.delivery.senders import DELIVERY_ID_HEADER, EmailSender, WebhookSender
from services.common.delivery.settle_query import SettleRead
from services.common.delivery.sms import KannelSender
from services.common.delivery.store import SqlDeliveryStore, Transaction

__all__ = [
    "DELIVERY_ID_HEADER",
    "PERMANENT_REASONS",
    "REASON_CLASSES",
    "TABLE_VERSION",
    "BaseDeliveryPlan",
    "Delivered",
    "DeliveryEngine",
    "DeliveryError",
    "DeliveryOrder",
    "DeliveryPlan",
    "DeliveryRecord",
    "DeliveryState",
    "EmailOutbound",
    "EmailSender",
    "EngineConfig",
    "Failure",
    "KannelSender",
    "MissingSender",
    "Outbound",
    "ReasonClass",
    "Resolution",
    "SenderRegistry",
    "SettleRead",
    "Settled",
    "Skip",
    "SmsOutbound",
    "SmsReceipt",
    "SqlDeliveryStore",
    "Transaction",
    "WebhookOutbound",
    "WebhookSender",
    "add_delivery_report_columns",
    "add_delivery_segments_column",
    "add_in_flight_indexes",
    "contract_reason",
    "create_delivery_records_table",
    "delivery_records_table",
    "drop_delivery_report_columns",
    "drop_delivery_segments_column",
    "drop_in_flight_indexes",
    "safe_body",
    "safe_header",
    "stored_reason",
]
