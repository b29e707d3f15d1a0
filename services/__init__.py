"""Aviso services: intake, router and rumor_control, plus shared infrastructure."""
