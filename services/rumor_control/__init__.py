"""Aviso rumor control: Rumor ledger and vetted English/Spanish bulletins for community liaisons, the radio desk and the public."""
