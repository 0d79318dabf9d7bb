"""Emulators of the providers' HTTP APIs, for tests and for users' own integrations:
``imagegate sandbox <provider> --port N``. Each speaks its provider's documented API,
returns real images (drawn by the built-in renderer) and injects faults on demand."""
