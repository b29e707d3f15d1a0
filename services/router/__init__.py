"""Aviso router: delivers each notice to the single point of contact, tracks acknowledgement
and escalates along the configured chain."""
