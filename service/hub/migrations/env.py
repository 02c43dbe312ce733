"""Alembic environment of the hub: migrates the connection ``anjian.service.hub.schema.upgrade_hub_database`` hands in.

The hub's tables share the database with the service's schema; their version is kept in
``hub_alembic_version`` so the two histories never meet.
"""

from __future__ import annotations

from alembic import context

from anjian.service.hub.tables import HubBase

HUB_VERSION_TABLE = "hub_alembic_version"

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=HubBase.metadata,
    version_table=HUB_VERSION_TABLE,
    render_as_batch=True,
    compare_type=True,
    include_name=lambda name, kind, _parent: (
        kind != "table" or ((name or "").startswith("hub_") and name != HUB_VERSION_TABLE)
    ),
)
with context.begin_transaction():
    context.run_migrations()
