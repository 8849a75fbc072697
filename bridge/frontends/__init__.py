"""Triggers: they translate what arrives into core calls and tell the sender what became of it."""
