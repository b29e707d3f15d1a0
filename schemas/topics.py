"""Kafka topic names of the Aviso contract.

Every topic is keyed by the id of the aggregate its events belong to, so one aggregate's events
stay in order on one partition. The ``.v1`` suffix changes only with an incompatible contract.
"""

from __future__ import annotations

__all__ = ["ALERTS", "ALL_TOPICS", "BULLETINS", "DIRECTORY", "DLQ", "NOTICES", "RUMORS"]

NOTICES = "aviso.notices.v1"
ALERTS = "aviso.alerts.v1"
RUMORS = "aviso.rumors.v1"
BULLETINS = "aviso.bulletins.v1"
DLQ = "aviso.dlq.v1"
# Which people are in the directory in force (ids only); one aggregate, one constant key.
DIRECTORY = "aviso.directory.v1"

ALL_TOPICS: tuple[str, ...] = (NOTICES, ALERTS, RUMORS, BULLETINS, DLQ, DIRECTORY)
