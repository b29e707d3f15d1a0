"""Delivery of rumor_control's own delivery requests over webhook and e-mail (Kafka):
`adapters` sends, `deliver` is the use case. Kept apart so the shared delivery engine can
replace it whole."""
