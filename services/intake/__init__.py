"""Aviso intake: Records field-office notices of federal immigration operations: durable, validated, idempotent, versioned; restricted details encrypted at rest."""
