"""``anjian bench hub``: the region's load model, and a small real run printing every figure."""

from __future__ import annotations

import pytest

from anjian.service.benchmarks.hub import HubLoadModel, run_hub_bench
from anjian.service.benchmarks.nats_servers import nats_server_available


def test_the_load_of_100_plants_of_60_cameras_follows_from_the_stated_assumptions() -> None:
    model = HubLoadModel(
        plants=100, cameras_per_plant=60, incidents_per_camera_hour=2, messages_per_incident=10
    )

    # 6,000 cameras x 2 incidents/h x 10 messages / 3,600 s, plus 100 health reports every 30 s
    assert model.messages_per_s == pytest.approx(6000 * 2 * 10 / 3600 + 100 / 30)
    assert HubLoadModel(plants=200).messages_per_s == pytest.approx(2 * model.messages_per_s)


@pytest.mark.slow
@pytest.mark.skipif(not nats_server_available(), reason="nats-server is not installed")
def test_a_small_run_measures_the_burst_the_latency_and_the_hub_intake() -> None:
    report = run_hub_bench(plants=2, events=40, rate_per_s=20.0, seconds=1.0)

    text = report.render()
    assert report.trickle_events == 20
    assert 0 < report.latency_p50_s <= report.latency_p95_s <= report.latency_max_s
    assert report.burst_per_s > 0 and report.intake_per_s > 0
    for figure in (
        "events/s through the bus",
        "latency p50",
        "messages/s (the hub alone)",
        "100 plants x 60",
    ):
        assert figure in text


def test_nonsense_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="expected plants >= 1"):
        run_hub_bench(plants=0)
