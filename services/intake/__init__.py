"""Aviso intake: records field-office notices of federal immigration operations.

Durable, validated, idempotent and versioned; restricted details encrypted at rest.
"""
