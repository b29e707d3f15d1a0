"""Aviso rumor control: a rumor ledger and vetted English/Spanish bulletins for community
liaisons, the radio desk and the public."""
