"""Infrastructure shared by every service: settings, logging, database, Kafka, outbox, HTTP."""
