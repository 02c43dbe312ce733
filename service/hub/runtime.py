"""Running a hub: its store, its bus consumer and its HTTP server, started and closed as one."""

from __future__ import annotations

import logging

import uvicorn

from anjian.cameras.url import mask_url
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.clips import HubClips
from anjian.service.hub.config import HubConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore

__all__ = ["serve_hub"]

logger = logging.getLogger(__name__)


def serve_hub(config: HubConfig, *, host: str, port: int) -> None:
    """Open the hub's store, consume every plant's messages and serve the API and dashboard until stopped.

    Stops on Ctrl-C or SIGTERM (uvicorn's handlers); the consumer stops after the server,
    and messages not acked by then come again at the next start.

    Raises:
        DatabaseError: The database cannot be opened or migrated.
    """
    store = HubStore.from_config(config.storage)
    bus = HubBus(config, store)
    try:
        app = create_hub_app(
            config,
            store,
            on_remark=bus.remark_added,
            clips=HubClips(config, bus.connection),
            is_bus_connected=lambda: bus.connection.is_connected,
        )
        bus.start()
        logger.info("hub: %d plant(s), NATS at %s", len(config.plants), mask_url(config.bus.url))
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        bus.stop()
        store.close()
