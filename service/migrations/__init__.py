"""Alembic migrations of the service's database, shipped inside the package (see ``anjian.service.database``)."""
