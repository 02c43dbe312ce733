"""Running a hub: its store, its bus consumer, its hourly clean-up and its HTTP server, started and closed as one."""

from __future__ import annotations

import logging
import time
from typing import Final

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from anjian.cameras.url import mask_url
from anjian.service.hub.api import create_hub_app
from anjian.service.hub.clips import HubClips
from anjian.service.hub.config import HubConfig
from anjian.service.hub.consumer import HubBus
from anjian.service.hub.store import HubStore
from anjian.service.periodic import PeriodicThread

__all__ = ["prune_closed_incidents", "serve_hub"]

logger = logging.getLogger(__name__)

_DAY_S: Final = 86_400.0
_PRUNE_INTERVAL_S: Final = 3600.0  # how often incidents closed longer than hub.keep_closed_days are deleted
_FIRST_PRUNE_AFTER_S: Final = (
    60.0  # the first time after start: a hub restarted more often than hourly prunes too
)


def prune_closed_incidents(store: HubStore, keep_closed_days: float, *, now: float | None = None) -> int:
    """Delete the incidents settled over ``keep_closed_days`` ago (the hub's hourly job); returns how many.

    Args:
        store: The hub's store.
        keep_closed_days: ``hub.keep_closed_days``.
        now: Epoch seconds; default the time now.
    """
    now = time.time() if now is None else now
    deleted = store.prune_closed(closed_before=now - keep_closed_days * _DAY_S)
    if deleted:
        logger.info("hub: deleted %d incident(s) settled over %g days ago", deleted, keep_closed_days)
    return deleted


def serve_hub(config: HubConfig, *, host: str, port: int) -> None:
    """Open the hub's store, consume every plant's messages and serve the API and dashboard until stopped.

    Stops on Ctrl-C or SIGTERM (uvicorn's handlers); the consumer stops after the server,
    and messages not acked by then come again at the next start. Every hour, incidents
    settled over ``hub.keep_closed_days`` ago are deleted (``prune_closed_incidents``).

    Raises:
        DatabaseError: The database cannot be opened or migrated.
    """
    store = HubStore.from_config(config.storage, response_window_s=config.hub.response_window_days * _DAY_S)
    bus = HubBus(config, store)
    pruner = PeriodicThread(
        lambda: prune_closed_incidents(store, config.hub.keep_closed_days),
        interval_s=_PRUNE_INTERVAL_S,
        first_after_s=_FIRST_PRUNE_AFTER_S,
        name="anjian-hub-prune",
        transient=(SQLAlchemyError,),
    )
    try:
        app = create_hub_app(
            config,
            store,
            on_remark=bus.remark_added,
            clips=HubClips(config, bus.connection),
            is_bus_connected=lambda: bus.connection.is_connected,
        )
        bus.start()
        pruner.start()
        logger.info("hub: %d plant(s), NATS at %s", len(config.plants), mask_url(config.bus.url))
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        pruner.stop()
        bus.stop()
        store.close()
