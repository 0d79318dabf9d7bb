"""Use cases: submit, cancel, requeue, keys. No HTTP, no SQL."""
