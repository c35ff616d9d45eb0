"""Runnable examples: ``python -m examples.booking`` from a checkout."""
