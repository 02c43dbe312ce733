"""Alembic migrations of the hub's tables (their own version table, ``hub_alembic_version``)."""
