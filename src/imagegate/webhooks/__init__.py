"""Webhooks: Standard Webhooks signatures, sealed secrets, and the HTTP attempt."""
