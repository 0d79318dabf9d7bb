"""The only package that knows SQL: models, repositories and Alembic migrations."""
