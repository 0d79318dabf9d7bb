"""Structured logs (and, later, metrics)."""
