"""The nats-server configs anjian writes: JetStream's file storage limit, set where asked and accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from anjian.service.bus.server_config import hub_server_config, plant_server_config
from tests.support.nats import assert_nats_server_accepts, nats_server_available


@pytest.mark.skipif(not nats_server_available(), reason="needs Debian's nats-server")
def test_a_file_storage_limit_is_written_where_asked_and_nats_server_accepts_it(tmp_path: Path) -> None:
    """The test topologies give JetStream 1 TB whatever the disk has free: the hub's stream reserves 20 GB."""
    hub = hub_server_config(
        listen="127.0.0.1:4222",
        leaf_listen="127.0.0.1:7422",
        store_dir=tmp_path / "hub",
        max_file_store_bytes=10**12,
    )
    plant = plant_server_config(
        plant_id="site-1",
        listen="127.0.0.1:4223",
        hub_leaf_url="nats-leaf://127.0.0.1:7422",
        store_dir=tmp_path / "plant",
        max_file_store_bytes=10**12,
    )
    for name, text in (("hub.conf", hub), ("plant.conf", plant)):
        assert "max_file_store: 1000000000000" in text, text
        assert_nats_server_accepts(tmp_path, name, text)
    default = hub_server_config(
        listen="127.0.0.1:4222", leaf_listen="127.0.0.1:7422", store_dir=tmp_path / "hub"
    )
    assert "max_file_store" not in default  # a site's server: nats-server's own default
