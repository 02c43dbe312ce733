"""``GET /site``: the names the control room shows for workshops, cameras and zones, never a camera URL."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from anjian.service.app import create_app
from anjian.service.config import AnjianConfig
from tests.service.conftest import bearer


def test_the_site_directory_gives_names_falls_back_to_ids_and_hides_urls(tmp_path: Path) -> None:
    config = AnjianConfig.model_validate(
        {
            "site": {
                "id": "plant-7",
                "name": "冷库二厂",
                "workshops": [
                    {
                        "id": "freezing-1",
                        "name": "氨制冷机房",
                        "kind": "freezing",
                        "cameras": [
                            {
                                "id": "cam-1",
                                "name": "机房入口",
                                "url": "rtsp://admin:s3cret@10.0.0.9/stream1",
                                "zones": [
                                    {"id": "exit-1", "kind": "exit", "polygon": [[0, 0], [1, 0], [1, 1]]}
                                ],
                            },
                            {"id": "cam-2", "url": "rtsp://10.0.0.10/stream1"},
                        ],
                    }
                ],
            },
            "storage": {"dir": str(tmp_path / "data")},
        }
    )
    app = create_app(config)
    client = TestClient(app)
    try:
        response = client.get("/site", headers=bearer(app.state.store, "viewer"))
    finally:
        app.state.sink.stop()
        app.state.store.close()

    assert response.status_code == 200
    assert response.json() == {
        "id": "plant-7",
        "name": "冷库二厂",
        "timezone": "UTC",
        "has_live_view": False,
        "workshops": [
            {
                "id": "freezing-1",
                "name": "氨制冷机房",
                "kind": "freezing",
                "cameras": [
                    {
                        "id": "cam-1",
                        "name": "机房入口",
                        "zones": [{"id": "exit-1", "name": "exit-1", "kind": "exit"}],
                    },
                    {"id": "cam-2", "name": "cam-2", "zones": []},
                ],
            }
        ],
    }
    assert "s3cret" not in response.text and "rtsp" not in response.text
